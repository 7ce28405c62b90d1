# placeholder, replaced below
registry_url() { echo "http://127.0.0.1:$REGISTRY_PORT"; }
registry_up() { log "registry: TODO"; }
registry_down() { :; }
registry_status() { echo "registry   TODO"; }
