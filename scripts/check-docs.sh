#!/usr/bin/env bash
# Builds the DocC documentation of the library targets with warnings as errors
# (broken symbol links, undocumented parameters), then fails if any public
# symbol declared in Sources/ has no doc comment.
#
#   scripts/check-docs.sh
#
# CI runs it. The archives land in .build/plugins/Swift-DocC/outputs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=(AsyncNSS AsyncNSSServiceLifecycle)
for target in "${targets[@]}"; do
    echo "==> generate-documentation --target $target"
    swift package generate-documentation --target "$target" --warnings-as-errors
done

echo "==> public symbols without a doc comment"
python3 - "${targets[@]}" <<'PY'
import glob, json, sys

missing = []
for target in sys.argv[1:]:
    graphs = glob.glob(f".build/*/extracted-symbols/*/{target}/{target}.symbols.json")
    if not graphs:
        sys.exit(f"no symbol graph for {target}")
    for symbol in json.load(open(graphs[0]))["symbols"]:
        uri = symbol.get("location", {}).get("uri", "")
        if "/Sources/" not in uri or symbol.get("accessLevel") not in ("public", "open"):
            continue
        if not symbol.get("docComment"):
            line = symbol["location"]["position"]["line"] + 1
            missing.append(f"{uri.split('/Sources/')[1]}:{line} {'.'.join(symbol['pathComponents'])}")
for entry in sorted(missing):
    print(entry)
print(f"{len(missing)} public symbols without a doc comment")
sys.exit(1 if missing else 0)
PY
