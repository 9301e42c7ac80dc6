#!/usr/bin/env bash
# Runs a command on a freshly installed Debian 12 inside this machine: builds a minimal root
# with `debootstrap --variant=minbase bookworm` in a temporary folder, copies this checkout
# into it (tracked files plus untracked ones that git does not ignore: what a commit would hold),
# mounts what a build and the MPI tests need (/proc, /sys, /dev, /dev/shm, /dev/pts), runs
# COMMAND there with chroot, and on every exit path (success, failure, Ctrl-C) stops what still
# runs inside, unmounts and removes the root. Exits with COMMAND's status. This is what CI does.
#
#   scripts/fresh-root.sh [--keep] [--no-cuda] [--dry-run] [COMMAND]
#
# COMMAND runs with bash in the copy's top folder (/src/paradit in the root) as root; default:
# the README's test command, then its main command:
#   scripts/test.sh && scripts/setup.sh && scripts/demo.sh
# Every Debian package inside the root comes from debootstrap's minimal set and scripts/setup.sh.
# Two host folders may be mounted into it, neither of them packages:
#   - a ccache folder, for speed (FRESH_ROOT_CCACHE, default ~/.cache/paradit-fresh-root/ccache;
#     "none" for a cold build every time);
#   - the CUDA toolkit at /usr/local/cuda, read-only, when the host has one (it is not a Debian
#     package; paradit's CUDA backend is optional): so the CUDA code is compiled with warnings as
#     errors as on the developers' machines. --no-cuda leaves it out.
# Options: --keep leaves the root in place (prints its path) for a look after a failure;
# --dry-run prints the steps without doing them.
# Environment: FRESH_ROOT_MIRROR (default http://deb.debian.org/debian), FRESH_ROOT_TMP (parent of
# the temporary folder, default /tmp), FRESH_ROOT_TRIES (debootstrap attempts, default 3).
# Needs root (mount, chroot) and debootstrap (apt-get install debootstrap).
set -euo pipefail
export LC_ALL=C

KEEP=0
CUDA=1
DRY=0
while (($#)); do
  case "$1" in
    --keep) KEEP=1; shift ;;
    --no-cuda) CUDA=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "fresh-root: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
COMMAND=${*:-"scripts/test.sh && scripts/setup.sh && scripts/demo.sh"}

SRC=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${FRESH_ROOT_MIRROR:-http://deb.debian.org/debian}
TRIES=${FRESH_ROOT_TRIES:-3}
CCACHE_HOST=${FRESH_ROOT_CCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paradit-fresh-root/ccache}
CUDA_HOST=""
if ((CUDA)) && [ -x /usr/local/cuda/bin/nvcc ]; then CUDA_HOST=$(readlink -f /usr/local/cuda); fi
INNER=/src/paradit

say() { echo "fresh-root: $*" >&2; }
fail() { echo "fresh-root: error: $*" >&2; exit 2; }

if ((DRY)); then
  cat <<EOF
fresh-root (dry run): the steps it would take
  1. mktemp -d ${FRESH_ROOT_TMP:-/tmp}/paradit-fresh-root.XXXXXX
  2. debootstrap --variant=minbase bookworm ROOT $MIRROR   (up to $TRIES tries)
  3. copy $SRC (git ls-files --cached --others --exclude-standard) to ROOT$INNER
  4. mount proc, /sys, /dev, tmpfs on /dev/shm, /dev/pts; ccache: ${CCACHE_HOST}; CUDA: ${CUDA_HOST:-none}
  5. chroot ROOT bash -c 'cd $INNER && $COMMAND'
  6. stop what runs inside, unmount everything under ROOT, rm -rf ROOT; exit with the command's status
EOF
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "needs root (mount and chroot); run it with sudo"
command -v debootstrap >/dev/null || fail "debootstrap not found (apt-get install debootstrap)"
git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 || fail "$SRC is not a git checkout"
case "$TRIES" in ''|*[!0-9]*|0) fail "FRESH_ROOT_TRIES must be a positive integer, got '$TRIES'" ;; esac

TMP=$(mktemp -d "${FRESH_ROOT_TMP:-/tmp}/paradit-fresh-root.XXXXXX")
ROOT=$TMP/root

# Mount points under $TMP, deepest first (from the kernel's table, so mounts made by the command
# inside, e.g. network namespaces under /run/netns, are found too).
mounts_under() {
  awk -v p="$TMP/" '{ gsub(/\\040/, " ", $5); if (index($5, p) == 1) print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Processes whose root is the chroot (the command and anything it left behind).
procs_inside() {
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    case "$r" in "$ROOT"|"$ROOT"/*) echo "${p#/proc/}" ;; esac
  done
}

cleanup() {
  local status=$? pids m i
  trap - EXIT INT TERM HUP
  set +e
  pids=$(procs_inside)
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do
      sleep 0.5
      pids=$(procs_inside)
      [ -z "$pids" ] && break
    done
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null && sleep 0.5
  fi
  for i in 1 2 3; do
    for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    [ -z "$(mounts_under)" ] && break
    sleep 1
  done
  if [ -n "$(mounts_under)" ]; then
    say "could not unmount $(mounts_under | tr '\n' ' '); leaving $TMP in place"
  elif ((KEEP)); then
    say "kept the root at $ROOT (remove it with: rm -rf --one-file-system $TMP)"
  else
    rm -rf --one-file-system "$TMP"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# 1. The root. debootstrap fetches ~80 packages; a network hiccup is retried with a pause.
start=$SECONDS
for ((try = 1; ; try++)); do
  say "debootstrap --variant=minbase bookworm ($MIRROR), try $try of $TRIES"
  if debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$TMP/debootstrap.log" 2>&1; then
    break
  fi
  last=$(grep -E 'E:|W:|Failed|failed|Could not|Couldn' "$TMP/debootstrap.log" | tail -n 1)
  for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf --one-file-system "$ROOT"
  if ((try >= TRIES)); then
    echo "fresh-root: error: debootstrap could not build bookworm from $MIRROR after $TRIES tries (last: ${last:-no error line in the log})" >&2
    exit 1
  fi
  sleep $((10 * try))
done
say "root ready in $((SECONDS - start)) s"

# 2. The checkout: what git tracks plus untracked files it does not ignore (no build folders).
mkdir -p "$ROOT$INNER"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
   while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
   tar --null -T - -cf -) | tar -xf - -C "$ROOT$INNER"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if [ -f /etc/hosts ]; then cp /etc/hosts "$ROOT/etc/hosts"; else echo "127.0.0.1 localhost" >"$ROOT/etc/hosts"; fi
hostname >"$ROOT/etc/hostname" 2>/dev/null || true

# 3. What a build and the MPI tests need.
mount -t proc proc "$ROOT/proc"
mount --bind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
mount --bind /dev/pts "$ROOT/dev/pts"
ENVS=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive)
PATH_INNER=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ "$CCACHE_HOST" != none ]; then
  mkdir -p "$CCACHE_HOST" "$ROOT/root/.cache/ccache"
  mount --bind "$CCACHE_HOST" "$ROOT/root/.cache/ccache"
  ENVS+=(CCACHE_DIR=/root/.cache/ccache)
fi
if [ -n "$CUDA_HOST" ]; then
  mkdir -p "$ROOT$CUDA_HOST"
  mount --bind "$CUDA_HOST" "$ROOT$CUDA_HOST"
  mount -o remount,bind,ro "$ROOT$CUDA_HOST"
  ln -sfn "$CUDA_HOST" "$ROOT/usr/local/cuda"
  # Its libraries on the loader's path, as the toolkit's installer sets up.
  echo "$CUDA_HOST/lib64" >"$ROOT/etc/ld.so.conf.d/paradit-cuda.conf"
  chroot "$ROOT" /sbin/ldconfig
  PATH_INNER=$PATH_INNER:/usr/local/cuda/bin
fi
ENVS+=(PATH="$PATH_INNER")
# The host's network settings, like resolv.conf above: where the host reaches PyPI through a
# TLS-inspecting proxy, the proxy's CA is only in the host's trust store, so the root gets a
# copy of the host's CA bundle (at a path no package owns) and the variables that point pip,
# Python and curl at it, plus any proxy or index settings. No package comes with them.
for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$bundle" ]; then
    mkdir -p "$ROOT/etc/ssl"
    cp "$bundle" "$ROOT/etc/ssl/host-ca-bundle.crt"
    for v in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
      ENVS+=("$v=/etc/ssl/host-ca-bundle.crt")
    done
    break
  fi
done
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL \
         PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT; do
  if [ -n "${!v:-}" ]; then ENVS+=("$v=${!v}"); fi
done

# 4. The command. Its status is the script's.
say "running in the root: $COMMAND"
# In the background so that a signal to this script interrupts `wait` at once (cleanup then
# stops the command); a foreground child would delay the trap until it ends.
set +e
chroot "$ROOT" /usr/bin/env -i "${ENVS[@]}" /bin/bash -c "cd $INNER && $COMMAND" </dev/null &
wait $!
status=$?
set -e
say "command exited with $status after $((SECONDS - start)) s in all"
exit "$status"
