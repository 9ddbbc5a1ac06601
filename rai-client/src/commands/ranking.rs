//! `rai ranking NAME [-n N]`: an assignment's leaderboard, by the worker-measured time of its ranked command.

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(
    global: &GlobalArgs,
    assignment: &str,
    n: usize,
    json: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let board = session.client.ranking(assignment, n).await?;
    if json {
        println!("{}", serde_json::to_string(&board)?);
        return Ok(exit::OK);
    }
    let timed = match board.command {
        Some(c) => format!("command {c}"),
        None => "all commands".to_string(),
    };
    if board.by_score {
        println!(
            "{}: by score, higher first, ties by the time of {timed} (the workers'); each team's best on-time run",
            visible(&board.assignment),
        );
    } else {
        println!(
            "{}: {timed} timed by the workers, {} is better; each team's best on-time run",
            visible(&board.assignment),
            if board.lower_is_better {
                "lower"
            } else {
                "higher"
            }
        );
    }
    println!(
        "{:<4} {:>5}  {:<24} {:>8} {:>10}",
        "", "RANK", "TEAM", "SCORE", "SECONDS"
    );
    for row in &board.rows {
        println!(
            "{:<4} {:>5}  {:<24} {:>8} {:>10.3}",
            if row.yours { "-->" } else { "" },
            row.rank,
            visible(&row.team),
            super::results::fraction(row.score, None, ""),
            row.seconds
        );
    }
    if board.unranked > 0 {
        println!(
            "({} team{} submitted without a successful on-time run to rank)",
            board.unranked,
            if board.unranked == 1 { "" } else { "s" }
        );
    }
    Ok(exit::OK)
}
