//! `catalog`: the operator CLI. Loads a JSON catalog into the table, reads, writes and
//! deletes single products, and drops cache entries. Uses the same environment as the
//! API (`TABLE_NAME`, `REDIS_URL` or `MEMCACHED_URL`, `AWS_*`); the actions are in `operator.rs`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use product_catalog::app;
use product_catalog::error::CatalogError;
use product_catalog::operator::{Operator, OperatorError};

#[derive(Parser)]
#[command(version, about = "Operate the product catalog: table and cache")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table (on-demand, stream with new and old images) if it does not exist,
    /// and wait until it takes writes (DynamoDB takes seconds to create one).
    CreateTable,
    /// Load a JSON array of products into the table (BatchWriteItem, retried). Every
    /// item is checked first; when any is invalid, nothing is written.
    Load {
        /// A file holding a JSON array of objects, each with a string `productId`.
        file: PathBuf,
    },
    /// Print one product as the API would serve it.
    Get { id: String },
    /// Write one product (a JSON object) and drop its cache entry. Attributes stored as
    /// sets or binary stay so when the new value fits (JSON cannot say it).
    Put { file: PathBuf },
    /// Delete one product and drop its cache entry and last-known-good copy.
    Delete { id: String },
    /// Drop one product's cache entry (`product:<id>`).
    Invalidate { id: String },
}

const BAR: &str = "{spinner} {bar:40} {pos}/{len} products {per_sec} eta {eta}";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let operator = Operator::new(app::config_or_exit("catalog"));
    match cli.command {
        Command::CreateTable => {
            // DynamoDB takes seconds to create a table, during which nothing is printed.
            eprintln!(
                "creating the table, or finding it, and waiting until it takes writes (up to 5 min)"
            );
            println!("table {} ready", operator.create_table().await?);
        }
        Command::Load { file } => {
            let bar = ProgressBar::no_length().with_style(ProgressStyle::with_template(BAR)?);
            let progress = |written, total| {
                bar.set_length(total as u64);
                bar.inc(written as u64);
            };
            let loaded = operator.load(&read(&file)?, progress).await;
            bar.finish();
            match loaded {
                Ok(loaded) => println!("loaded {loaded} products"),
                Err(OperatorError::Catalog(CatalogError::BadItems { bad, total })) => {
                    for item in &bad {
                        eprintln!("{}: {item}", file.display());
                    }
                    anyhow::bail!(
                        "{} of {total} items in {} are invalid; nothing was written",
                        bad.len(),
                        file.display()
                    );
                }
                Err(err) => return Err(err).context(format!("cannot load {}", file.display())),
            }
        }
        Command::Get { id } => println!("{}", operator.get(&id).await?),
        Command::Put { file } => println!("stored {}", operator.put(&read(&file)?).await?),
        Command::Delete { id } => println!("deleted {}", operator.delete(&id).await?),
        Command::Invalidate { id } => println!("invalidated {}", operator.invalidate(&id).await?),
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
