#!/usr/bin/env bash
# Prints the CPU instructions one call costs through the whole in-process
# stack (internal/app's benchmarks, client included), counted by valgrind's
# callgrind. Unlike timings, the counts barely move with the machine's load,
# so two revisions compare on a busy or shared machine: repeated runs agree
# within about 1%. Each figure is (N+1 calls − 1 call) / N, so server start
# and seeding cancel out; compare figures of the same N only (warm-up is
# spread over N: 2000 calls read about 4% more per call than 4000).
#
#   scripts/instructions.sh            # GetUser and UpdateUser, REST and gRPC, N=3000
#   N=4000 scripts/instructions.sh 'BenchmarkGetUser/grpc$'
#
# Needs valgrind (Debian: apt-get install valgrind). Takes one to two
# minutes per benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
n=${N:-3000}
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=('BenchmarkGetUser/rest-inprocess$' 'BenchmarkGetUser/grpc$'
  'BenchmarkUpdateUser/rest-inprocess$' 'BenchmarkUpdateUser/grpc$')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/app.test" ./internal/app

# instructions BENCH CALLS: the instructions of a run of CALLS calls.
# Go's asynchronous preemption signals trip an assertion in callgrind's
# signal tracking, so they are off (which moves the counts less than their
# run-to-run spread).
instructions() {
  if ! (cd internal/app && GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file="$work/out" \
    "$work/app.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2x" -test.cpu 1) >"$work/log" 2>&1; then
    echo "instructions.sh: $1 ($2 calls) failed under valgrind:" >&2
    tail -n 20 "$work/log" >&2
    return 1
  fi
  sed -n 's/.*I *refs: *//p' "$work/log" | tr -d ,
}
for b in "${benches[@]}"; do
  one=$(instructions "$b" 1) && many=$(instructions "$b" $((n + 1))) || exit 1
  printf '%-40s %8d instructions per call\n' "$b" $(( (many - one) / n ))
done
