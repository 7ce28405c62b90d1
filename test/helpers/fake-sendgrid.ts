/**
 * A fake SendGrid on 127.0.0.1: keeps every POST /v3/mail/send and answers 202, or the
 * statuses queued in `answers` first. Shared by the notifier's and the jobs' mail tests.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SentMail {
  authorization: string | undefined;
  body: {
    personalizations: Array<{ to: Array<{ email: string }> }>;
    from: { email: string; name?: string };
    subject: string;
    content: Array<{ type: string; value: string }>;
    categories?: string[];
  };
}

export interface FakeSendGrid {
  url: string;
  mails: SentMail[];
  /** Statuses to answer, in order, before the default 202. */
  answers: number[];
  requests: number;
  close(): Promise<void>;
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export async function fakeSendGrid(): Promise<FakeSendGrid> {
  const fake: FakeSendGrid = { url: '', mails: [], answers: [], requests: 0, close: async () => undefined };
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    fake.requests++;
    if (req.method !== 'POST' || req.url !== '/v3/mail/send') return void res.writeHead(404).end();
    const status = fake.answers.shift() ?? 202;
    if (status !== 202) {
      return void res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ message: `fake SendGrid says ${status}`, field: null }] }));
    }
    fake.mails.push({ authorization: (req.headers as IncomingHttpHeaders).authorization, body: JSON.parse(body.toString('utf8')) });
    res.writeHead(202).end();
  });
  fake.url = `http://127.0.0.1:${await listen(server)}`;
  fake.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return fake;
}
