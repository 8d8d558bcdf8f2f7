//! The fuzz targets of fuzz/ (cargo-fuzz, nightly) run on the stable toolchain as a bounded
//! smoke test: the checked-in seeds, then a few thousand inputs per target made from them by a
//! seeded mutator (byte flips, insertions and deletions, splices, tokens of the syntax).
//! Deterministic, so a failure reproduces; the panic message shows the input, which then
//! belongs in fuzz/seeds/<target>/. `AKSARA_FUZZ_ITERATIONS` and `AKSARA_FUZZ_SEED` run it
//! longer or differently on a developer's machine.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Inputs per target beyond the seeds, in CI.
const DEFAULT_ITERATIONS: usize = 20_000;
const DEFAULT_SEED: u64 = 0x616b_7361_7261;

/// SplitMix64: tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of connection-string and .env syntax, so mutations reach the interesting states.
const TOKENS: &[&[u8]] = &[
    b"postgresql://",
    b"postgres://",
    b"@",
    b":",
    b"/",
    b"?",
    b"&",
    b"=",
    b",",
    b"%",
    b"%2F",
    b"%00",
    b"[",
    b"]",
    b"'",
    b"\"",
    b"\\",
    b" ",
    b"\n",
    b"\r\n",
    b"#",
    b"$",
    b"${A}",
    b"export ",
    b"KEY=",
    b"DATABASE_URL=",
    b"host=",
    b"port=",
    b"password=",
    b"sslmode=require",
    b"options=",
    b"\xff",
    b"\xef\xbb\xbf",
    "é".as_bytes(),
    "🐘".as_bytes(),
];

fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(4)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..to].iter().copied());
            }
            4 => out.insert(at, rng.next() as u8),
            _ => {
                let n = rng.below(8);
                out.splice(at..at, (0..n).map(|_| rng.next() as u8));
            }
        }
    }
    out.truncate(512);
    out
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on every seed, then on mutated inputs; a panic names the input.
fn smoke(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    let iterations = setting("AKSARA_FUZZ_ITERATIONS", DEFAULT_ITERATIONS as u64) as usize;
    let seed = setting("AKSARA_FUZZ_SEED", DEFAULT_SEED);
    let mut rng = Rng(seed);
    let mut pool = seeds.clone();
    let run = |input: &[u8]| {
        if let Err(panic) = std::panic::catch_unwind(|| check(input)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{target} failed on {:?} (seed {seed}): {message}",
                String::from_utf8_lossy(input)
            );
        }
    };
    for input in &seeds {
        run(input);
    }
    for _ in 0..iterations {
        let base = if rng.below(8) == 0 {
            Vec::new()
        } else {
            pool[rng.below(pool.len())].clone()
        };
        let input = mutate(&mut rng, &base, &seeds);
        run(&input);
        // Keep some mutants as bases, so changes accumulate (a poor man's corpus).
        if rng.below(4) == 0 {
            if pool.len() < 256 {
                pool.push(input);
            } else {
                let i = rng.below(pool.len());
                pool[i] = input;
            }
        }
    }
}

#[test]
fn dsn_parse_smoke() {
    smoke("dsn_parse", checks::dsn_parse);
}

#[test]
fn env_upsert_smoke() {
    smoke("env_upsert", checks::env_upsert);
}
