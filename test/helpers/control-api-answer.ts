/**
 * The control API's JSON answers as the tests read them: a run's view, the run list or an error.
 * Every field is optional since each route sends its own; one a test reads and the route did not
 * send is undefined and fails that test's assertion.
 */
import type { RunView } from '../../ops/control-api.ts';

export type ControlApiAnswer = Partial<RunView> & {
  error?: string;
  status_url?: string;
  tiendas?: string[];
  runs?: RunView[];
};
