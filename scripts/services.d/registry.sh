# The schema registry for scripts/services (sourced). Apicurio Registry 2.4.2, built once
# from Maven Central jars (registry/pom.xml) into the services cache, run on loopback; its
# Confluent-compatible API lives under /apis/ccompat/v7. Storage is an H2 database in a file
# under the services cache, so schema ids survive a restart as the records in Kafka need.
REGISTRY_DIR="$STATE/registry"

registry_url() { echo "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"; }

registry_install() {
  local stamp="$REGISTRY_DIR/.build.sha256"
  local want; want="$(cat "$HERE/registry/pom.xml" "$HERE/registry/src/main/resources/application.properties" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$REGISTRY_DIR/build/target/quarkus-app/quarkus-run.jar" ]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to build the schema registry: apt-get install -y maven"
  log "building the schema registry (Apicurio 2.4.2) from Maven Central into $REGISTRY_DIR (about a minute, once)"
  rm -rf "$REGISTRY_DIR/build"; mkdir -p "$REGISTRY_DIR/build"
  cp -r "$HERE/registry/." "$REGISTRY_DIR/build/"
  (cd "$REGISTRY_DIR/build" && mvn -B -q package -DskipTests >"$REGISTRY_DIR/mvn.log" 2>&1) \
    || die "building the schema registry failed: see $REGISTRY_DIR/mvn.log"
  echo "$want" >"$stamp"
}

registry_ready() { curl -fsS -o /dev/null "$(registry_url)/subjects" 2>/dev/null; }

registry_up() {
  registry_install
  local pidfile="$REGISTRY_DIR/registry.pid"
  if pid_alive "$pidfile"; then log "schema registry already running at $(registry_url)"; return 0; fi
  port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another process (set FLUXION_REGISTRY_PORT)"
  log "starting the schema registry at $(registry_url)"
  (
    cd "$REGISTRY_DIR"
    # A simple command after `&`, so $! is the JVM itself and `down` stops the right process.
    mkdir -p "$REGISTRY_DIR/data"
    # H2 in a file, not in memory: records kept in Kafka carry schema ids, which must still
    # mean the same schemas after a restart.
    nohup java -Xmx192m -XX:+UseSerialGC -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.datasource.jdbc.url="jdbc:h2:file:$REGISTRY_DIR/data/registry;DB_CLOSE_ON_EXIT=FALSE" \
      -jar "$REGISTRY_DIR/build/target/quarkus-app/quarkus-run.jar" >"$REGISTRY_DIR/registry.log" 2>&1 &
    echo $! >"$pidfile"
  )
  wait_for registry 90 registry_ready || die "the schema registry did not answer in 90 s: see $REGISTRY_DIR/registry.log"
}

registry_down() { stop_pid "$REGISTRY_DIR/registry.pid" "schema registry"; }

registry_status() {
  if pid_alive "$REGISTRY_DIR/registry.pid"; then echo "registry   running   $(registry_url)  pid=$(cat "$REGISTRY_DIR/registry.pid")"
  else echo "registry   stopped   $(registry_url)"; fi
}
