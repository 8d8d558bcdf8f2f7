//! Linked as aksara is (its build.rs): without PIE on Linux unless AKSARA_BUILD_PIE is set, so
//! that the floor and aksara start the same way and the comparison stays like for like.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AKSARA_BUILD_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("AKSARA_BUILD_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
