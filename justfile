# Recipes for the GFS simulation testbed. `just --list` shows them with these comments.
# Every recipe is a plain cargo command, so nothing here is needed to build or test.

# List the recipes
default:
    @just --list

# Run the whole test suite (thousands of seeded runs, unit tests, determinism checks)
test:
    cargo test

# Sweep a range of seeds in release mode, e.g. `just sweep 0..10000 --chunk-size 8`
sweep SEEDS="0..10000" *FLAGS:
    cargo run --release -p sim -- sweep --seeds {{SEEDS}} {{FLAGS}}

# Run one seed and print its summary and verdict, e.g. `just run 42 --replication 2`
run SEED *FLAGS:
    cargo run --release -p sim -- run --seed {{SEED}} {{FLAGS}}

# Re-run one seed: write traces/seed-SEED.jsonl, print its timeline (one column per node), verdict
replay SEED *FLAGS:
    cargo run --release -p sim -- replay {{SEED}} {{FLAGS}}

# Show the first line where two traces differ
diff A B:
    cargo run --release -p sim -- diff {{A}} {{B}}

# Run a scripted scenario from scenarios/ and say whether its expectations held (no NAME: list
# them), e.g. `just scenario primary_partitioned --show messages`
scenario NAME="" *FLAGS:
    cargo run --release -p sim -- scenario {{NAME}} {{FLAGS}}

# Sweep seeds and print GFS Table 1 as observed, e.g. `just table 0..10000`
table SEEDS="0..10000" *FLAGS:
    cargo run --release -p sim -- table --seeds {{SEEDS}} {{FLAGS}}

# Sweep seeds in order until one fails, e.g. `just hunt --bug early_lease`
hunt *FLAGS:
    cargo run --release -p sim -- hunt {{FLAGS}}

# Run a scenario with a fault at each of its fault points (two with --depth 2) and write every failing
# schedule under scenarios/found/, e.g. `just explore happy_path --depth 2 --bug unsynced_log`
explore NAME *FLAGS:
    cargo run --release -p sim -- explore {{NAME}} {{FLAGS}}

# Every coverage probe with its count over a sweep, and those never hit, e.g. `just coverage 0..2000`
coverage SEEDS="0..2000" *FLAGS:
    cargo run --release -p sim -- coverage --seeds {{SEEDS}} {{FLAGS}}

# Mutation testing of the protocol with the gate test (cargo-mutants 27.1; README, "Mutation
# testing"), e.g. `just mutants node/src/client/core.rs --shard 0/4`. 30 to 45 s a mutant here.
mutants FILE="node/src/**" *FLAGS:
    CARGO_TARGET_DIR="{{justfile_directory()}}/target/mutants" cargo mutants --baseline=skip --timeout 300 --output target -f '{{FILE}}' {{FLAGS}}

# Shrink a failing seed into a small scenario under scenarios/found/, e.g. `just shrink 3 --bug early_lease`
shrink SEED *FLAGS:
    cargo run --release -p sim -- shrink {{SEED}} {{FLAGS}}

# Accept changed scenario timelines: rewrite traces/snapshots/ and scenarios/found/*.timeline.txt
bless:
    INSTA_UPDATE=always cargo test -p sim --test scenarios --test shrink

# Formatting and clippy with warnings denied, as CI runs them
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Format the code
fmt:
    cargo fmt --all

# Write every scenario's space-time diagram to traces/diagrams/NAME.html (found scenarios under
# traces/diagrams/found/), the diagrams the teaching notes (notes/) link to, and, if Debian's
# `chromium` is installed (apt-get install chromium), a screenshot of each beside it (NAME.png),
# to look at what a browser shows. `cargo test` checks the SVG itself; this needs a browser.
diagrams:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p traces/diagrams/found
    cargo build --release -p sim
    names="$(./target/release/sim scenario) $(cd scenarios && ls found/*.toml | sed 's/\.toml$//')"
    for name in $names; do
        ./target/release/sim scenario "$name" --html "traces/diagrams/$name.html" > /dev/null || true
        if command -v chromium > /dev/null; then
            chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,1600 \
                --disable-background-networking --no-first-run \
                --screenshot="traces/diagrams/$name.png" "file://$PWD/traces/diagrams/$name.html" 2> /dev/null
        fi
    done
    command -v chromium > /dev/null || echo "no chromium: wrote the diagrams only (apt-get install chromium for screenshots)"
    ls traces/diagrams traces/diagrams/found
