//! `floor URL`: connect with sqlx, run `SELECT 1`, close. What a healthy-database check costs
//! at the least on the driver aksara uses; `bench/run.sh` compares `aksara doctor` with it.

use std::process::ExitCode;

use sqlx::Connection as _;

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: floor URL");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let result = runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(one)
    });
    match result {
        Ok(1) => ExitCode::SUCCESS,
        Ok(other) => {
            eprintln!("SELECT 1 returned {other}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
