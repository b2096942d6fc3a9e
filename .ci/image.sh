#!/usr/bin/env bash
# The content engine's image for tests/image: installs the image tools (buildah, podman, runc,
# uidmap, fuse-overlayfs, debootstrap) if missing, then makes the image one of three ways:
#
#   bash .ci/image.sh                  build app/Dockerfile on a stand-in of its base (default)
#   IMAGE_BASE=registry bash .ci/image.sh   build app/Dockerfile on the real base (a machine that
#                                      reaches Docker Hub, e.g. GitHub Actions)
#   IMAGE_REF=REGISTRY/REPO@sha256:... bash .ci/image.sh   pull an image already pushed
#
# and tags the result ENGINE_IMAGE (default localhost/aquascene/content-engine:test), which
# tests/image runs; beside it, a PostgreSQL server of the major the stacks run, from Debian's
# packages on the same base (POSTGRES_SERVER_IMAGE), for the restore half of the backup drill. The stand-in, for machines that reach Debian's packages and PyPI but no
# container registry: the Dockerfile's `FROM ... AS base` tag names its Debian release and Python
# minor (python:3.13-slim-trixie); debootstrap makes that release with Debian's python3, which
# must be the same minor, and it is imported under the very tag the Dockerfile names. It carries
# this machine's apt mirror and settings, pip configuration and extra CA certificates, so that
# apt-get and pip inside the build reach their registries the way this machine does. None of
# that goes into the repository or the Dockerfile: it exists only in this machine's image store.
#
# Cached: the stand-in's root filesystem (a tarball keyed by release, packages and the machine's
# settings, in IMAGE_CACHE_DIR) and buildah's layer cache, so a warm run takes seconds.
# Needs root (debootstrap, apt-get, rootful podman). Prints the time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE_IMAGE="${ENGINE_IMAGE:-localhost/aquascene/content-engine:test}"
IMAGE_BASE="${IMAGE_BASE:-standin}"
IMAGE_REF="${IMAGE_REF:-}"
if [ -n "${IMAGE_REF}" ]; then IMAGE_BASE=registry; fi   # a machine that pulls the image pulls its base
CACHE_DIR="${IMAGE_CACHE_DIR:-/var/cache/aquascene-image}"
DOCKERFILE=app/Dockerfile
# What the stand-in installs beside debootstrap's minimal base: the interpreter the official
# image ships (with venv's ensurepip and the `python` name) and the CA store the build's pip uses.
STANDIN_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"

started=$(date +%s)
phase_started=${started}
log() { printf '[image] %s\n' "$*" >&2; }
phase() {
  local now; now=$(date +%s)
  printf '[image] %-36s %4ss\n' "$1" "$(( now - phase_started ))" >&2
  phase_started=${now}
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ------------------------------------------------------------------ tools
missing=()
for tool in buildah:buildah podman:podman runc:runc newuidmap:uidmap fuse-overlayfs:fuse-overlayfs \
            debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  bash .ci/apt-install.sh "${missing[@]}"
fi
phase "image tools"

# ------------------------------------------------------------------ the base
# The one `FROM <image> AS base` line of the Dockerfile, e.g. python:3.13-slim-trixie[@sha256:...].
base=$(sed -nE 's/^FROM[[:space:]]+([^[:space:]]+)[[:space:]]+AS[[:space:]]+base[[:space:]]*$/\1/p' "${DOCKERFILE}")
if [ -z "${base}" ] || [ "$(printf '%s\n' "${base}" | wc -l)" -ne 1 ]; then
  log "${DOCKERFILE} must have exactly one 'FROM <image> AS base' line"; exit 2
fi
base_tag="${base%%@*}"                                    # the digest, if any, is the real image's
python_minor=$(sed -nE 's/^python:([0-9]+\.[0-9]+)-slim-([a-z]+)$/\1/p' <<<"${base_tag}")
release=$(sed -nE 's/^python:([0-9]+\.[0-9]+)-slim-([a-z]+)$/\2/p' <<<"${base_tag}")
if [ -z "${python_minor}" ] || [ -z "${release}" ]; then
  log "the base ${base} does not name a Python minor and a Debian release (python:X.Y-slim-RELEASE)"; exit 2
fi
# Short names resolve to Docker Hub's library; a digest-pinned FROM resolves to the tag here.
standin="docker.io/library/${base_tag}"

if [ "${IMAGE_BASE}" = "standin" ]; then
  # The machine's Debian mirror (its first Debian URI), its apt settings on how to reach it
  # (proxy, validity checks), its pip configuration and extra CA certificates: what the
  # stand-in carries, and part of its cache key.
  mirror=$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
           | grep -oE 'https?://[^[:space:]]+' | head -1 || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
  mirror="${mirror%/}"
  security="${mirror%/debian}/debian-security"
  apt_settings=$(grep -lE '^[[:space:]]*Acquire::(https?::|ftp::|Check-|Retries)' /etc/apt/apt.conf.d/* 2>/dev/null || true)
  extra_cas=$(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort || true)
  pip_conf=""
  if [ -f /etc/pip.conf ]; then pip_conf=/etc/pip.conf; fi
  key=$( { echo "${release} ${python_minor} ${STANDIN_PACKAGES} ${mirror} ${security}"
           for f in ${apt_settings} ${extra_cas} ${pip_conf}; do echo "${f}"; cat "${f}"; done
         } | sha256sum | cut -c1-16)
  have_key=$(buildah inspect --type image --format '{{index .Docker.Config.Labels "io.aquascene.standin"}}' \
               "${standin}" 2>/dev/null || true)
  if [ "${have_key}" = "${key}" ]; then
    log "stand-in ${standin} (${key}) already in the image store"
  else
    tarball="${CACHE_DIR}/standin-${release}-${key}.tar"
    if [ ! -s "${tarball}" ]; then
      rootfs=$(mktemp -d "${TMPDIR:-/tmp}/standin.XXXXXX")
      trap 'rm -rf "${rootfs}"' EXIT
      log "debootstrap ${release} (${STANDIN_PACKAGES}) from ${mirror}"
      as_root debootstrap --variant=minbase --include="${STANDIN_PACKAGES}" "${release}" "${rootfs}" "${mirror}" >&2
      have_minor=$(chroot "${rootfs}" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      if [ "${have_minor}" != "${python_minor}" ]; then
        log "Debian ${release}'s python3 is ${have_minor}, the base ${base_tag} is Python ${python_minor}:" \
            "a stand-in would not test the same interpreter"; exit 1
      fi
      cat >"${rootfs}/etc/apt/sources.list" <<EOF
deb ${mirror} ${release} main
deb ${mirror} ${release}-updates main
deb ${security} ${release}-security main
EOF
      for f in ${apt_settings}; do cp "${f}" "${rootfs}/etc/apt/apt.conf.d/"; done
      for f in ${extra_cas}; do cp "${f}" "${rootfs}/usr/local/share/ca-certificates/"; done
      [ -z "${pip_conf}" ] || cp "${pip_conf}" "${rootfs}/etc/pip.conf"
      chroot "${rootfs}" update-ca-certificates >/dev/null
      rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin "${rootfs}"/var/cache/apt/archives/*.deb
      mkdir -p "${CACHE_DIR}"
      tar -C "${rootfs}" --numeric-owner -cf "${tarball}.part" .
      mv "${tarball}.part" "${tarball}"
      # Only the current stand-in of a release is kept.
      find "${CACHE_DIR}" -maxdepth 1 -name "standin-${release}-*.tar" ! -name "${tarball##*/}" -delete
      rm -rf "${rootfs}"
      trap - EXIT
      phase "debootstrap ${release} + python${python_minor}"
    fi
    ctr=$(buildah from scratch)
    buildah add --quiet "${ctr}" "${tarball}" / >/dev/null
    # The official image's interface: python on PATH, UTF-8, the CA store pip uses.
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 \
      --label "io.aquascene.standin=${key}" \
      --label "io.aquascene.standin.note=a stand-in for ${base_tag} made by debootstrap (test only)" "${ctr}"
    buildah commit --quiet --format docker --rm "${ctr}" "${standin}" >/dev/null
    phase "stand-in base import"
  fi
fi

# ------------------------------------------------------------------ a PostgreSQL server of the stacks' major
# The restore half of tests/image's backup drill needs a server at least as new as the image's
# pg_restore (17 cannot restore into an older server); this machine's may be older. Debian's
# postgresql-<major> on the same base, built once.
if [ "${IMAGE_BASE}" != "standin" ]; then
  # Fully qualified: a machine's short-name settings cannot send the base elsewhere.
  buildah pull --quiet "docker.io/library/${base}" >/dev/null
  phase "base pull"
fi
pg_major=$(sed -nE 's/^ARG POSTGRES_MAJOR=([0-9]+)$/\1/p' "${DOCKERFILE}")
server_image="${POSTGRES_SERVER_IMAGE:-localhost/aquascene/postgresql-server:${pg_major}}"
if ! podman image exists "${server_image}"; then
  ctr=$(buildah from --quiet --pull=never "${base}")
  buildah run --isolation chroot "${ctr}" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends postgresql-${pg_major} >/dev/null && rm -rf /var/lib/apt/lists/*" >&2
  buildah config --user postgres --env "PATH=/usr/lib/postgresql/${pg_major}/bin:/usr/local/bin:/usr/bin:/bin" \
    --cmd postgres "${ctr}"
  buildah commit --quiet --format docker --rm "${ctr}" "${server_image}" >/dev/null
  phase "postgresql ${pg_major} server image"
fi

# ------------------------------------------------------------------ a pushed image
if [ -n "${IMAGE_REF}" ]; then
  podman pull --quiet "${IMAGE_REF}" >/dev/null
  podman tag "${IMAGE_REF}" "${ENGINE_IMAGE}"
  phase "pull ${IMAGE_REF}"
  exit 0
fi

# ------------------------------------------------------------------ the build
build_started=$(date +%s)
buildah bud --isolation chroot --format docker --layers --pull=never \
  -f "${DOCKERFILE}" --ignorefile "${DOCKERFILE}.dockerignore" -t "${ENGINE_IMAGE}" . >&2
phase "image build (buildah)"
size=$(podman image inspect --format '{{.Size}}' "${ENGINE_IMAGE}")
log "${ENGINE_IMAGE}: $(( size / 1000000 )) MB, built in $(( $(date +%s) - build_started ))s (base ${base})"
log "done in $(( $(date +%s) - started ))s"
