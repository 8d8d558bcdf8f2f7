// Linked as aksara is: its build script, so that the floor and aksara start the same way and the
// comparison stays like for like (without PIE on Linux unless AKSARA_BUILD_PIE is set).
include!("../../build.rs");
