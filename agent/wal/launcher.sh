#!/bin/sh
# gcwal launcher: runs the bundled CLI (gcwal.mjs) with Node, except for the
# two calls it can answer without Node (agent/wal/README.md describes both).
#
# PostgreSQL's archiver starts `gcwal wal-push pg_wal/<segment>` once per
# segment. When an earlier wal-push has archived that segment ahead (see
# agent/wal/ahead.ts), it left a marker in pg_wal/.gcwal-pushed/<segment>
# whose first line names the repository and the file exactly (see
# agent/wal/marker.ts). Rebuilding that line here and finding it equal
# answers the call without starting Node, which costs far more than the
# whole check (docs/performance.md). Anything else, including any doubt, goes to
# Node, which checks the marker again and pushes the segment if need be
# (idempotent). This script never writes anything: Node removes stale
# markers.
#
# This file is a template. agent/wal/launcher.mjs fills in the settings below:
# the build writes dist/gcwal (the package's bin), the test harness writes
# the wrapper of its installed copy. Keep it POSIX sh.

# The Node binary (a command name looked up on PATH, or a path).
gcwal_node=@NODE@
# The bundle to run; empty means gcwal.mjs beside this launcher once
# symbolic links (npm's bin link) are followed.
gcwal_bundle=@BUNDLE@

# Print a failure and exit: gcwal_fail CODE MESSAGE HINT "$@". PostgreSQL
# reads an exit status 1-125 of restore_command as "not in the archive" and
# may then end archive recovery early and promote. So, by the same rule as
# agent/recovery-exit.ts, wal-fetch run in a data directory in archive
# recovery (PostgreSQL runs restore_command there: PG_VERSION, and no
# standby.signal, which a standby has) exits 126, which stops recovery; on a
# standby and at a shell the failure keeps its own CODE.
gcwal_fail() {
  if [ "${4-}" = wal-fetch ] && [ -e PG_VERSION ] && [ ! -e standby.signal ]; then
    printf 'gcwal: error: %s; stopping recovery so that it does not end early (%s, then start PostgreSQL again to resume recovery)\n' "$2" "$3" >&2
    exit 126
  fi
  printf 'gcwal: error: %s (%s)\n' "$2" "$3" >&2
  exit "$1"
}

# Succeeds only when the marker for the file $1 (archive_command's %p:
# pg_wal/<name> relative to the data directory, or an absolute path) vouches
# for this repository ($GCWAL_REPO) and this very file as it is now: same
# name, device, inode, size and modification time (nanoseconds).
gcwal_pushed_ahead() {
  # Node would parse a leading dash as an option; a trailing slash names no file.
  case $1 in '' | -* | */) return 1 ;; esac
  gcwal_name=${1##*/}
  # Only full segment names are ever pushed ahead.
  [ "${#gcwal_name}" -eq 24 ] || return 1
  case $gcwal_name in *[!0-9A-F]*) return 1 ;; esac
  # (for /<name> the directory part is empty: the marker is /.gcwal-pushed/<name>)
  case $1 in */*) gcwal_dir=${1%/*} ;; *) gcwal_dir=. ;; esac
  # The marker is one line per field set; a newline in the URL cannot be matched.
  case $GCWAL_REPO in *'
'*) return 1 ;; esac
  gcwal_marker=$gcwal_dir/.gcwal-pushed/$gcwal_name
  [ -f "$gcwal_marker" ] && [ -r "$gcwal_marker" ] && [ -f "$1" ] || return 1
  # Only a complete first line counts (read fails without its newline).
  IFS= read -r gcwal_line 2>/dev/null <"$gcwal_marker" || return 1
  # -L: follow a symbolic link as Node's stat does. LC_ALL=C: a locale must
  # not turn the decimal point of %.9Y into a comma.
  gcwal_id=$(LC_ALL=C stat -L -c '%d %i %s %.9Y' -- "$1" 2>/dev/null) || return 1
  [ "x$gcwal_line" = "xgcwal-marker 1 $gcwal_name $gcwal_id $GCWAL_REPO" ]
}

# Asynchronous archiving (GCWAL_ARCHIVE_ASYNC, agent/wal/archiver.ts): succeeds
# once the background archiver has marked the segment $1 (%p) durable, as
# gcwal_pushed_ahead checks it. Waits only while the archiver in
# .gcwal-archiver/archiver.pid lives (and runs wal-archiver, where /proc
# tells) and its last push did not fail (no .gcwal-archiver/failing), polling
# every 20 ms for at most 30 s (archiver-control.ts ASYNC_WAIT_MS); anything
# else, a stale marker included, goes to Node, which pushes the segment
# itself when need be.
gcwal_archived_async() {
  case $1 in '' | -* | */) return 1 ;; esac
  gcwal_name=${1##*/}
  [ "${#gcwal_name}" -eq 24 ] || return 1
  case $gcwal_name in *[!0-9A-F]*) return 1 ;; esac
  case $1 in */*) gcwal_dir=${1%/*} ;; *) gcwal_dir=. ;; esac
  IFS= read -r gcwal_pid 2>/dev/null <"$gcwal_dir/.gcwal-archiver/archiver.pid" || return 1
  case $gcwal_pid in '' | *[!0-9]*) return 1 ;; esac
  if [ -r "/proc/$gcwal_pid/cmdline" ]; then
    case $(tr '\000' ' ' <"/proc/$gcwal_pid/cmdline" 2>/dev/null) in *' wal-archiver '*) ;; *) return 1 ;; esac
  fi
  gcwal_tries=0
  while [ "$gcwal_tries" -lt 1500 ]; do
    [ -e "$gcwal_dir/.gcwal-pushed/$gcwal_name" ] && { gcwal_pushed_ahead "$1"; return; }
    [ ! -e "$gcwal_dir/.gcwal-archiver/failing" ] || return 1
    # The archiver pushes only what PostgreSQL marked ready.
    [ -e "$gcwal_dir/archive_status/$gcwal_name.ready" ] || return 1
    kill -0 "$gcwal_pid" 2>/dev/null || return 1
    sleep 0.02 2>/dev/null || return 1
    gcwal_tries=$((gcwal_tries + 1))
  done
  # Node is not to wait as long again: it pushes the segment itself.
  GCWAL_ARCHIVE_WAITED=1
  export GCWAL_ARCHIVE_WAITED
  return 1
}

# Succeeds, having renamed the segment into place, only when the prefetch
# spool (agent/wal/spool-entry.ts) holds the segment $1 for this repository
# ($GCWAL_REPO) and this restore (the data directory's PG_VERSION, in the
# current directory, where PostgreSQL runs restore_command), as it was
# written: same device, inode, size and modification time. $2 is %p,
# pg_wal/<file>. A segment the check refuses is left for Node, which
# checks it again (its CRC32C too) and removes it.
gcwal_spooled() {
  # Full segment names only: never a .history, .partial or .backup file.
  [ "${#1}" -eq 24 ] || return 1
  case $1 in *[!0-9A-F]*) return 1 ;; esac
  case $2 in pg_wal/?*) ;; *) return 1 ;; esac
  case ${2#pg_wal/} in */* | .*) return 1 ;; esac
  case $GCWAL_REPO in *'
'*) return 1 ;; esac
  gcwal_spool_file=pg_wal/.gcwal-spool/$1
  [ -f "$gcwal_spool_file.entry" ] && [ -r "$gcwal_spool_file.entry" ] && [ -f "$gcwal_spool_file" ] && [ -f PG_VERSION ] || return 1
  IFS= read -r gcwal_line 2>/dev/null <"$gcwal_spool_file.entry" || return 1
  gcwal_id=$(LC_ALL=C stat -L -c '%d %i %s %.9Y' -- "$gcwal_spool_file" PG_VERSION 2>/dev/null) || return 1
  # Two lines, the spooled file's then PG_VERSION's.
  gcwal_nl='
'
  case $gcwal_id in *"$gcwal_nl"*) ;; *) return 1 ;; esac
  [ "x$gcwal_line" = "xgcwal-spool 1 $1 ${gcwal_id%%"$gcwal_nl"*} ${gcwal_id#*"$gcwal_nl"} $GCWAL_REPO" ] || return 1
  # A rename within pg_wal: PostgreSQL sees the whole segment or none.
  mv -f -- "$gcwal_spool_file" "$2" 2>/dev/null
}

# Succeeds once the prefetcher has finished spooling the segment $1 that it
# is writing now (its temporary file, or the segment without its record yet,
# is in the spool, and the process in fetcher.pid lives): PostgreSQL asked
# for a segment still in flight, and waiting for it is cheaper than starting
# Node to download the same segment again. Polls every 20 ms, at most 30 s,
# and gives up as soon as nothing is in flight or the prefetcher is gone.
gcwal_wait_spooled() {
  [ "${#1}" -eq 24 ] || return 1
  case $1 in *[!0-9A-F]*) return 1 ;; esac
  gcwal_tries=0
  while [ "$gcwal_tries" -lt 1500 ]; do
    [ -f "pg_wal/.gcwal-spool/$1.entry" ] && return 0
    gcwal_inflight=
    [ -f "pg_wal/.gcwal-spool/$1" ] && gcwal_inflight=yes
    for gcwal_tmp in "pg_wal/.gcwal-spool/.$1."*.tmp; do
      [ -e "$gcwal_tmp" ] && gcwal_inflight=yes
      break
    done
    [ -n "$gcwal_inflight" ] || return 1
    IFS= read -r gcwal_pid 2>/dev/null <pg_wal/.gcwal-spool/fetcher.pid || return 1
    case $gcwal_pid in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$gcwal_pid" 2>/dev/null || return 1
    sleep 0.02 2>/dev/null || return 1
    gcwal_tries=$((gcwal_tries + 1))
  done
  return 1
}

# Exactly `gcwal wal-fetch <segment> pg_wal/<file>` (restore_command) with
# the repository in the environment, prefetch on and not verbose: a
# prefetched segment is a rename. Anything else goes to Node, which fetches.
if [ "$#" -eq 3 ] && [ "$1" = wal-fetch ] && [ -n "${GCWAL_REPO-}" ]; then
  case ${GCWAL_VERBOSE-}/${GCWAL_PREFETCH-} in
    '/' | '/'[1-9]* | 0/ | 0/[1-9]* | [Ff][Aa][Ll][Ss][Ee]/ | [Ff][Aa][Ll][Ss][Ee]/[1-9]* | [Nn][Oo]/ | [Nn][Oo]/[1-9]* | [Oo][Ff][Ff]/ | [Oo][Ff][Ff]/[1-9]*)
      if gcwal_spooled "$2" "$3" || { gcwal_wait_spooled "$2" && gcwal_spooled "$2" "$3"; }; then exit 0; fi
      ;;
  esac
fi

# Exactly `gcwal wal-push <path>` with the repository in the environment and
# not verbose (a verbose run logs what it did, so Node answers it).
if [ "$#" -eq 2 ] && [ "$1" = wal-push ] && [ -n "${GCWAL_REPO-}" ]; then
  case ${GCWAL_VERBOSE-} in
    '' | 0 | [Ff][Aa][Ll][Ss][Ee] | [Nn][Oo] | [Oo][Ff][Ff])
      if gcwal_pushed_ahead "$2"; then exit 0; fi
      case ${GCWAL_ARCHIVE_ASYNC-} in
        1 | [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Oo][Nn])
          if gcwal_archived_async "$2"; then exit 0; fi
          ;;
      esac
      ;;
  esac
fi

# Node 20 reads and parses every certificate NODE_EXTRA_CA_CERTS names as it
# starts, whether or not a TLS connection follows: for Debian's whole bundle
# more than half of Node's start-up (docs/performance.md). wal-push and
# wal-fetch into a file:// repository open no TLS connection (nor one to
# PostgreSQL), so they start without it. Only when the repository comes from
# the environment: a --repo among the arguments could name a gs:// one.
case ${1-} in
  wal-push | wal-fetch)
    case ${GCWAL_REPO-} in
      file://*)
        gcwal_repo_flag=no
        for gcwal_arg in "$@"; do
          case $gcwal_arg in --repo | --repo=*) gcwal_repo_flag=yes ;; esac
        done
        [ "$gcwal_repo_flag" = yes ] || unset NODE_EXTRA_CA_CERTS
        ;;
    esac
    ;;
esac

# Which certificates Node trusts: by default the system's OpenSSL store (as
# pgBackRest, curl and gcloud do), whose directory OpenSSL searches by the
# issuer's hash as a connection needs it. Node's own roots are ~140
# certificates parsed in full by the first TLS connection of every process,
# a cost on every archive_command call to gs:// (docs/performance.md). Only with
# a directory of hashed certificates (SSL_CERT_DIR if set, else the system's
# usual place, exported so that a Node whose OpenSSL looks elsewhere finds
# it); GCWAL_CA_STORE=node (or --ca-store node, which wins, as flags do)
# keeps Node's bundled roots. SSL_CERT_FILE, when set, is then honoured too.
gcwal_ca_flag=
gcwal_ca_store=${GCWAL_CA_STORE-system}
gcwal_prev_arg=
for gcwal_arg in "$@"; do
  case $gcwal_prev_arg in --ca-store) gcwal_ca_store=$gcwal_arg ;; esac
  case $gcwal_arg in --ca-store=*) gcwal_ca_store=${gcwal_arg#--ca-store=} ;; esac
  gcwal_prev_arg=$gcwal_arg
done
case $gcwal_ca_store in
  system)
    if [ -n "${SSL_CERT_DIR-}" ]; then
      gcwal_ca_flag=--use-openssl-ca
    else
      for gcwal_ca_dir in /etc/ssl/certs /etc/pki/tls/certs; do
        for gcwal_ca_hashed in "$gcwal_ca_dir"/*.0; do
          if [ -e "$gcwal_ca_hashed" ]; then
            gcwal_ca_flag=--use-openssl-ca
            SSL_CERT_DIR=$gcwal_ca_dir
            export SSL_CERT_DIR
          fi
          break
        done
        [ -z "$gcwal_ca_flag" ] || break
      done
    fi
    ;;
esac

if [ -z "$gcwal_bundle" ]; then
  gcwal_self=$0
  gcwal_hops=0
  while [ -h "$gcwal_self" ] && [ "$gcwal_hops" -lt 40 ]; do
    gcwal_link=$(readlink -- "$gcwal_self") || break
    case $gcwal_link in
      /*) gcwal_self=$gcwal_link ;;
      *) case $gcwal_self in */*) gcwal_self=${gcwal_self%/*}/$gcwal_link ;; *) gcwal_self=$gcwal_link ;; esac ;;
    esac
    gcwal_hops=$((gcwal_hops + 1))
  done
  case $gcwal_self in */*) gcwal_bundle=${gcwal_self%/*}/gcwal.mjs ;; *) gcwal_bundle=gcwal.mjs ;; esac
fi
if [ ! -f "$gcwal_bundle" ]; then
  gcwal_fail 11 "the bundle $gcwal_bundle is missing" 'reinstall gcwal, or run npm run build in a checkout' "$@"
fi
# wal-push and wal-fetch have a bundle of their own beside the main one: one
# CommonJS file that Node loads faster than the ES module entry and its
# chunks (see agent/wal/cli.ts). Without it, the main bundle runs them too.
case ${1-} in
  wal-push | wal-fetch)
    case $gcwal_bundle in */*) gcwal_wal_bundle=${gcwal_bundle%/*}/gcwal-wal.cjs ;; *) gcwal_wal_bundle=gcwal-wal.cjs ;; esac
    if [ -f "$gcwal_wal_bundle" ]; then gcwal_bundle=$gcwal_wal_bundle; fi
    ;;
esac
# How the user ran gcwal, for Node to write where a command line runs it
# again (backup-fetch's restore_command): $0 as given, symbolic links kept
# (see agent/self-command.ts).
GCWAL_LAUNCHER=$0
export GCWAL_LAUNCHER

# wal-fetch in archive recovery (the rule of gcwal_fail above) does not trust
# Node's exit status alone: Node that fails before gcwal's handlers run (a
# damaged or truncated bundle) exits 1, which PostgreSQL reads as "not in
# the archive", or even 0 having written nothing. So Node runs as a child,
# told (GCWAL_LAUNCHER_CHILD, agent/recovery-exit.ts) to report "not in the
# archive" as 125, which becomes 1 here; 0 counts only with a file at %p; a
# status above 125 (gcwal's own 126, a signal) is passed on; anything else
# is a failure, 126. %p is the last argument that is neither an option nor
# an option's value (every option takes a value but these booleans, the
# configuration table's: agent/config.ts). --help keeps the exec.
gcwal_child_mode=no
if [ "${1-}" = wal-fetch ] && [ -e PG_VERSION ] && [ ! -e standby.signal ]; then
  gcwal_child_mode=yes
  gcwal_dest=
  gcwal_skip=command
  for gcwal_arg in "$@"; do
    case $gcwal_skip in
      command | value) gcwal_skip= ; continue ;;
      rest) gcwal_dest=$gcwal_arg; continue ;;
    esac
    case $gcwal_arg in
      --) gcwal_skip=rest ;;
      --help | -h) gcwal_child_mode=no ;;
      --verbose | --archive-async | --*=*) ;;
      --*) gcwal_skip=value ;;
      *) gcwal_dest=$gcwal_arg ;;
    esac
  done
fi
set -- @NODE_ARGS@ ${gcwal_ca_flag:+"$gcwal_ca_flag"} "$gcwal_bundle" "$@"
[ "$gcwal_child_mode" = yes ] || exec "$gcwal_node" "$@"

GCWAL_LAUNCHER_CHILD=1
export GCWAL_LAUNCHER_CHILD
"$gcwal_node" "$@" &
gcwal_child=$!
# Whatever stops this shell stops Node first, so that no fetch outlives it.
gcwal_signalled=
trap 'gcwal_signalled=yes; kill -TERM "$gcwal_child" 2>/dev/null' TERM
trap 'gcwal_signalled=yes; kill -INT "$gcwal_child" 2>/dev/null' INT
trap 'gcwal_signalled=yes; kill -QUIT "$gcwal_child" 2>/dev/null' QUIT
trap 'gcwal_signalled=yes; kill -HUP "$gcwal_child" 2>/dev/null' HUP
while :; do
  gcwal_signalled=
  wait "$gcwal_child"
  gcwal_status=$?
  # A trapped signal ends wait early, the child still running (or not yet
  # reaped): wait again for its own status.
  [ -n "$gcwal_signalled" ] && kill -0 "$gcwal_child" 2>/dev/null || break
done
case $gcwal_status in
  0) [ -n "$gcwal_dest" ] && [ -f "$gcwal_dest" ] && exit 0
     gcwal_why="wal-fetch exited 0 but no file is at ${gcwal_dest:-%p}" ;;
  125) exit 1 ;;
  12[6-9] | 1[3-9][0-9] | 2[0-9][0-9]) exit "$gcwal_status" ;;
  *) gcwal_why="Node exited with status $gcwal_status before wal-fetch reported an outcome" ;;
esac
printf 'gcwal: error: %s; stopping recovery so that it does not end early (the install may be damaged: reinstall gcwal or run npm run build, then start PostgreSQL again to resume recovery)\n' "$gcwal_why" >&2
exit 126
