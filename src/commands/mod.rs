//! One module per subcommand: orchestration only; the logic lives in the library modules.

pub mod completions;
pub mod dbserver;
pub mod dbsetup;
pub mod doctor;
