//! `nhc-server jobset add|list|delete|token`: the jobset service of the handlers,
//! from the command line.

use clap::Subcommand;
use nhc_handlers::core::jobset::CreateJobsetRequest;
use nhc_handlers::core::JobsetName;
use nhc_handlers::service::jobsets;
use nhc_handlers::AppState;

#[derive(Subcommand)]
pub enum JobsetCommand {
    /// Create a jobset (a named series of evaluations).
    Add {
        /// Jobset name: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List jobsets with their latest evaluation.
    List {
        /// Print JSON (as GET /v1/jobsets) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a jobset with its evaluations and tokens.
    Delete { name: String },
    /// Issue a token that may upload evaluations of this jobset only; prints only the token.
    Token { name: String },
}

fn jobset_name(name: &str) -> Result<JobsetName, String> {
    JobsetName::parse(name).map_err(|e| e.to_string())
}

pub async fn run(state: &AppState, cmd: JobsetCommand) -> Result<(), String> {
    match cmd {
        JobsetCommand::Add { name, description } => {
            let req = CreateJobsetRequest { name: jobset_name(&name)?, description };
            jobsets::create(state, req).await.map_err(|e| e.to_string())?;
            eprintln!("jobset {name} created");
        }
        JobsetCommand::List { json } => {
            let list = jobsets::list(state).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else if list.is_empty() {
                eprintln!("no jobsets yet: add one with `nhc-server jobset add NAME`");
            } else {
                for j in list {
                    let latest = match &j.latest {
                        Some(e) => {
                            let pc = nhc_jobset::Percentages::of(&e.summary);
                            format!("{} ({}): {} paths, {:.1}% reproduced", e.rev, e.created_at, e.paths, pc.reproduced)
                        }
                        None => "no evaluation".to_owned(),
                    };
                    println!("{}\t{}\t{}", j.name, latest, j.description.replace('\n', " "));
                }
            }
        }
        JobsetCommand::Delete { name } => {
            jobsets::delete(state, &jobset_name(&name)?).await.map_err(|e| e.to_string())?;
            eprintln!("deleted jobset {name} with its evaluations and tokens");
        }
        JobsetCommand::Token { name } => {
            let t = jobsets::issue_token(state, &jobset_name(&name)?).await.map_err(|e| e.to_string())?;
            println!("{}", t.token);
        }
    }
    Ok(())
}
