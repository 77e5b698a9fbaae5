//! `catalog`: the operator CLI. Loads a JSON catalog into the table, reads, writes and
//! deletes single products, and drops cache entries. Uses the same environment as the
//! API (`TABLE_NAME`, `REDIS_URL`, `AWS_*`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use product_catalog::adapters::{DynamoStore, RedisCache};
use product_catalog::config::{self, Config};
use product_catalog::domain::ProductId;
use product_catalog::error::CatalogError;
use product_catalog::item::{catalog_from_json, check_item, item_from_json, keep_stored_types};
use product_catalog::ports::{Cache, ProductStore};

#[derive(Parser)]
#[command(version, about = "Operate the product catalog: table and cache")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table (on-demand, stream with new and old images) if it does not exist.
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
    /// Delete one product and drop its cache entry.
    Delete { id: String },
    /// Drop one product's cache entry (`product:<id>`).
    Invalidate { id: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env().context("configuration")?;
    match cli.command {
        Command::CreateTable => {
            let store = store(&config).await?;
            store.create_table().await.context("create table")?;
            println!("table {} ready", store.table());
        }
        Command::Load { file } => {
            let items = match catalog_from_json(&read(&file)?) {
                Ok(items) => items,
                Err(CatalogError::BadItems { bad, total }) => {
                    for item in &bad {
                        eprintln!("{}: {item}", file.display());
                    }
                    bail!(
                        "{} of {total} items in {} are invalid; nothing was written",
                        bad.len(),
                        file.display()
                    );
                }
                Err(err) => return Err(err).context(format!("cannot load {}", file.display())),
            };
            let store = store(&config).await?;
            let total = items.len();
            let bar = ProgressBar::new(total as u64).with_style(ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} products {per_sec} eta {eta}",
            )?);
            let result = store.load(items, |written| bar.inc(written as u64)).await;
            bar.finish();
            // Counted from what the table accepted, so never more than it holds.
            let written = bar.position();
            result.with_context(|| {
                format!("load stopped after {written} of {total} products were written")
            })?;
            println!("loaded {written} products into {}", store.table());
        }
        Command::Get { id } => {
            let id = ProductId::parse(&id)?;
            match store(&config).await?.get(&id).await? {
                Some(product) => println!("{}", String::from_utf8_lossy(product.body())),
                None => bail!("product {id:?} not found"),
            }
        }
        Command::Put { file } => {
            let item = item_from_json(&read(&file)?)
                .with_context(|| format!("{} is not a product", file.display()))?;
            let id = check_item(&item)
                .with_context(|| format!("{} cannot be stored", file.display()))?;
            let store = store(&config).await?;
            let item = match store.get_item(&id).await.context("read the stored item")? {
                Some(stored) => keep_stored_types(item, &stored),
                None => item,
            };
            store.put(item).await.context("put")?;
            invalidate_if_configured(&config, &id).await?;
            println!("stored {id}");
        }
        Command::Delete { id } => {
            let id = ProductId::parse(&id)?;
            store(&config).await?.delete(&id).await.context("delete")?;
            invalidate_if_configured(&config, &id).await?;
            println!("deleted {id}");
        }
        Command::Invalidate { id } => {
            let id = ProductId::parse(&id)?;
            if !invalidate_if_configured(&config, &id).await? {
                bail!(
                    "{} is not set: the in-process cache lives inside the server; restart it instead",
                    config::REDIS_URL
                );
            }
            println!("invalidated {}", id.cache_key());
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn store(config: &Config) -> anyhow::Result<DynamoStore> {
    let Some(table) = &config.table_name else {
        bail!(
            "{} is not set: name the DynamoDB table to work on",
            config::TABLE_NAME
        );
    };
    Ok(DynamoStore::from_env(table.clone()).await)
}

/// Deletes the product's cache key when a Redis is configured; says whether it did.
async fn invalidate_if_configured(config: &Config, id: &ProductId) -> anyhow::Result<bool> {
    let Some(url) = product_catalog::app::redis_url(config).await? else {
        return Ok(false);
    };
    // An operator command may wait longer than a request would.
    let redis = RedisCache::connect(&url, Duration::from_secs(5), 1)?;
    redis
        .wait_connected(Duration::from_secs(5))
        .await
        .context("connect to Redis")?;
    redis
        .delete(&id.cache_key())
        .await
        .context("delete cache key")?;
    redis.quit().await;
    Ok(true)
}
