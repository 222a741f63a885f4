# Sourced by the deploy test: points podman (and podman-compose, which runs podman) at the runc
# wrapper in this folder, through a containers.conf of its own. cgroupfs: there is no systemd here.
containers_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AC_PODMAN_CONF_DIR=${AC_PODMAN_CONF_DIR:-/var/tmp/agentconnect-deploy-test}
mkdir -p "$AC_PODMAN_CONF_DIR"
install -m 0755 "$containers_dir/runc-wrapper" "$AC_PODMAN_CONF_DIR/runc-wrapper"
cat > "$AC_PODMAN_CONF_DIR/containers.conf" <<CONF
[engine]
runtime = "acrunc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[engine.runtimes]
acrunc = ["$AC_PODMAN_CONF_DIR/runc-wrapper"]
CONF
export CONTAINERS_CONF="$AC_PODMAN_CONF_DIR/containers.conf"
