// How the `aksara` binary is linked. On Linux, without PIE: the dynamic loader then has none
// of the binary's ~4,800 relocations to apply at every start, and none of the ~30 pages they
// sit on to copy. That is ~0.15 ms of CPU and 0.3–0.5 ms of wall time per run, 5–8 % of a
// healthy `aksara doctor` (bench/NOTES.md section 21). ASLR still places the stack, the heap,
// every mapping and the shared libraries (libc, and the OpenSSL verifier library aksara
// opens) at random; only the executable's own image sits at a fixed address, as Go programs
// on linux/amd64 have by default. A build that wants a PIE sets AKSARA_BUILD_PIE=1
// (docs/audit.md).

fn main() {
    // This file, also when bench/floor/build.rs includes it (the path is then that of this one).
    println!("cargo:rerun-if-changed={}", file!());
    println!("cargo:rerun-if-env-changed=AKSARA_BUILD_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("AKSARA_BUILD_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
