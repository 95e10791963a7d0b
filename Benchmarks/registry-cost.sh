#!/usr/bin/env bash
# The poll registry's own CPU cost per wake-up, before and after a change:
#
#   Benchmarks/registry-cost.sh [OLD_COMMIT]     # default fcffcd9, before the incremental poll array
#
# Builds registry-cost/main.swift in release mode in a scratch package with
# Sources/AsyncNSS/Poll/PollRegistry.swift as of OLD_COMMIT (renamed
# OldPollRegistry) and as it is now, and prints microseconds per poll cycle for
# 100, 1,000 and 10,000 waiting sockets. No NSS involved: PR_Poll's own O(n)
# cost comes on top (about 135 ns per SSL descriptor).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
old=${1:-fcffcd9}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Sources/registry-cost"
cat > "$work/Package.swift" <<'SWIFT'
// swift-tools-version: 6.0
import PackageDescription
let package = Package(name: "registry-cost", targets: [.executableTarget(name: "registry-cost")])
SWIFT
# The old file also declares the shared types (PollInterest, PollOutcome, PollWaitID): keep them once.
git show "$old:Sources/AsyncNSS/Poll/PollRegistry.swift" \
    | sed -e 's/struct PollRegistry</struct OldPollRegistry</' \
          -e '/^enum PollInterest/,/^}/d' -e '/^enum PollOutcome/,/^}/d' -e '/^struct PollWaitID/,/^}/d' \
    > "$work/Sources/registry-cost/Old.swift"
cp Sources/AsyncNSS/Poll/PollRegistry.swift "$work/Sources/registry-cost/New.swift"
cp Benchmarks/registry-cost/main.swift "$work/Sources/registry-cost/main.swift"
swift build -c release --package-path "$work" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
"$work/.build/release/registry-cost"
