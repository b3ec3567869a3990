#!/usr/bin/env bash
# Peak memory of a git clone + render: a repository with 10,000 groups and
# 1,000 commits of history, served by git daemon on loopback, checked by
# `pxeops check git://...` (the same depth-1 clone and load as serve) and
# by `serve` until its first revision is served. Needs git and GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
daemon=
cleanup() { [ -n "$daemon" ] && kill -- -"$daemon" 2>/dev/null; pkill -f "pxeops serve --source git://127.0.0.1:18082" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/pxeops" ./cmd/pxeops
go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 "$work/work"
cd "$work/work"
git init -q -b main . && git config user.email b@pxeops.invalid && git config user.name bench
git add -A && git commit -q -m fleet
for i in $(seq 1 999); do
  sed -i "s/^  rack: .*/  rack: edit$i/" groups/node0$(printf %04d $((i % 10000))).yaml
  git commit -q -am "edit $i"
done
echo "commits: $(git rev-list --count HEAD), repository: $(du -sh .git | cut -f1)"
git clone -q --bare . "$work/fleet.git"
cd - >/dev/null
setsid git daemon --reuseaddr --export-all --base-path="$work" --listen=127.0.0.1 --port=18082 "$work" &
daemon=$!
sleep 1
for run in 1 2 3; do
  /usr/bin/time -f "check git:// run $run: %e s, max RSS %M KB" "$work/pxeops" check git://127.0.0.1:18082/fleet.git | tail -1
done
/usr/bin/time -f "check of the local clone (file://): %e s, max RSS %M KB" "$work/pxeops" check "file://$work/fleet.git" | tail -1
"$work/pxeops" serve --source git://127.0.0.1:18082/fleet.git --state-dir "$work/state" --http-addr 127.0.0.1:18083 2>/dev/null &
serve=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18083/readyz >/dev/null && break; sleep 0.1; done
echo "serve after its first revision: max RSS $(grep VmHWM /proc/$serve/status | awk '{print $2, $3}')"
kill $serve
