# shellcheck shell=bash
# Container helpers for the image tests (scripts/suites/62-container.sh) and
# for anyone who wants the image on a machine without a Docker engine or a
# reachable container registry. Source it after scripts/lib.sh and
# deploy/tests/tools.sh:
#   need_podman          podman, buildah and runc from Debian, and a
#                        containers.conf these machines can run (CONTAINERS_CONF)
#   need_runtime_base    a distroless-like runtime base made from Debian
#                        packages, imported as $RUNTIME_BASE
#   need_builder_base    a Debian (mmdebstrap) builder with this machine's Rust
#                        toolchain, imported as $BUILDER_BASE
# Each image's tag is a digest of its recipe and inputs, so re-running reuses
# what is already there and a changed recipe makes a new image.

CONTAINER_DIR="$TOOLS_DIR/container"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"

need_podman() {
  need_apt podman buildah runc
  mkdir -p "$CONTAINER_DIR"
  # crun (podman's default runtime) fails here on setrlimit and on the hybrid
  # cgroup layout; runc with cgroupfs works. Ulimits above the machine's hard
  # limits make every container fail to start, so stay within them.
  local nofile nproc
  nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
  nproc="$(ulimit -Hu)"; { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  cat >"$CONTAINER_DIR/containers.conf" <<EOF
# Written by deploy/tests/container.sh (need_podman).
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  CONTAINERS_CONF="$CONTAINER_DIR/containers.conf"
  export CONTAINERS_CONF
}

# The runtime base: what gcr.io/distroless/cc-debian12:nonroot holds (glibc,
# libgcc, CA certificates, time zones, /etc/services, a nonroot user 65532,
# no shell, no package manager), from this machine's Debian packages.
RUNTIME_PACKAGES=(libc6 libgcc-s1 base-files netbase tzdata ca-certificates)

need_runtime_base() {
  local versions key work root deb
  # apt-get download fetches each package's candidate version.
  versions="$(for p in "${RUNTIME_PACKAGES[@]}"; do apt-cache policy "$p" | sed -n 's/^ *Candidate: //p'; done)"
  key="$( { declare -f need_runtime_base; echo "${RUNTIME_PACKAGES[*]}"; echo "$versions"; } | sha256sum | cut -c1-12)"
  RUNTIME_BASE="localhost/approvald-runtime-base:$DEBIAN_SUITE-$key"
  export RUNTIME_BASE
  podman image exists "$RUNTIME_BASE" && return 0
  log "making the runtime base $RUNTIME_BASE from Debian packages: ${RUNTIME_PACKAGES[*]}"
  work="$(mktemp -d)"
  root="$work/rootfs"
  mkdir -p "$work/debs" "$root"
  (cd "$work/debs" && apt-get download -q "${RUNTIME_PACKAGES[@]}" >/dev/null 2>&1) \
    || (apt-get update -qq && cd "$work/debs" && apt-get download -q "${RUNTIME_PACKAGES[@]}" >/dev/null)
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  # What the maintainer scripts would have made: the CA bundle
  # (update-ca-certificates) and the accounts (distroless: root, nobody, nonroot).
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot" "$root/root"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
  # Nothing to run here but the binary: no docs, man pages or lintian data.
  # update-ca-certificates is a shell script, and there is no shell.
  rm -f "$root/usr/sbin/update-ca-certificates"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" \
    "$root/usr/share/base-files" "$root/usr/share/common-licenses" "$root/etc/update-motd.d"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/home/nonroot" "$root/root"
  tar -C "$root" --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name \
    --exclude=./home/nonroot -cf "$work/rootfs.tar" .
  # home/nonroot belongs to nonroot (as in distroless): re-add it with its owner.
  tar -C "$root" --numeric-owner --owner=65532 --group=65532 --mtime=@0 --no-recursion -rf "$work/rootfs.tar" ./home/nonroot
  # One variable per ENV: podman import keeps `ENV A=1 B=2` as one variable.
  podman import -q \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$work/rootfs.tar" "$RUNTIME_BASE" >/dev/null
  rm -rf "$work"
}

# The builder base for the full multi-stage build: what rust:1.95-bookworm
# holds (a Debian with gcc, libc6-dev, ca-certificates, git and the Rust
# toolchain in /usr/local/cargo and /usr/local/rustup). The Debian part is
# mmdebstrap --variant=minbase from the Debian mirror; Debian's own rustc is
# too old for the workspace (rust-version 1.89) and rustup's downloads
# (static.rust-lang.org) are not reachable from CI, so the toolchain is the
# one this machine's rustup installed, copied in.
need_builder_base() {
  need_apt mmdebstrap
  local toolchain rustup_home cargo_home key work
  rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  toolchain="$(rustc --print sysroot)"
  case "$toolchain" in
    "$rustup_home"/toolchains/*) ;;
    *) echo "the Rust toolchain ($toolchain) is not a rustup toolchain under $rustup_home: cannot copy it into the builder" >&2; return 1 ;;
  esac
  key="$( { declare -f need_builder_base; rustc -vV; } | sha256sum | cut -c1-12)"
  BUILDER_BASE="localhost/approvald-builder-base:$DEBIAN_SUITE-$key"
  export BUILDER_BASE
  podman image exists "$BUILDER_BASE" && return 0
  log "making the builder base $BUILDER_BASE: mmdebstrap $DEBIAN_SUITE + $(rustc --version)"
  work="$(mktemp -d)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev,git,pkg-config,make \
    "$DEBIAN_SUITE" "$work/debian.tar"
  mkdir -p "$work/add/usr/local/rustup/toolchains" "$work/add/usr/local/cargo/bin"
  # Without its documentation (800 MB): what rustup's minimal profile has.
  tar -C "$(dirname "$toolchain")" --exclude="$(basename "$toolchain")/share/doc" -cf - "$(basename "$toolchain")" \
    | tar -C "$work/add/usr/local/rustup/toolchains" -xf -
  printf 'default_toolchain = "%s"\nprofile = "minimal"\nversion = "12"\n' "$(basename "$toolchain")" \
    >"$work/add/usr/local/rustup/settings.toml"
  for tool in rustup cargo rustc rustdoc rustfmt cargo-clippy clippy-driver; do
    [ -e "$cargo_home/bin/$tool" ] && cp -a "$cargo_home/bin/$tool" "$work/add/usr/local/cargo/bin/"
  done
  tar -C "$work/add" --numeric-owner --owner=0 --group=0 -rf "$work/debian.tar" ./usr/local/rustup ./usr/local/cargo
  podman import -q \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /' \
    "$work/debian.tar" "$BUILDER_BASE" >/dev/null
  rm -rf "$work"
}
