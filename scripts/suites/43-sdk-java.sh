# The Java SDK (sdk/java): Maven generates the messages from proto/ (protoc
# from Maven Central), compiles, and runs the JUnit tests (including the
# README's example) against live replicas on one Redis.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/sdk/tests/cluster.sh"

command -v javac >/dev/null || need_apt openjdk-17-jdk-headless
command -v mvn >/dev/null || need_apt maven

start_cluster
start_traced_replica
cd "$ROOT/sdk/java"
log "mvn verify (sdk/java)"
mvn -B -ntp verify "$@"
