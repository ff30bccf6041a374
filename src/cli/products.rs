//! `products`, `products set` and `release`: the products policy, per product.

use clap::Subcommand;

use super::{out, print_json, Result};
use crate::products::{Decision, Mode, Take};
use crate::Hub;

/// `products` subcommands.
#[derive(Subcommand)]
pub enum ProductsCommand {
    /// Set a product's mode for the whole cluster: current (follows the zone), frozen
    /// (keeps its revision), delayed (a new revision waits publish.delay) or on-demand
    /// (a new revision waits for `updhub release`).
    Set {
        /// The product, as the zone names it (e.g. 10-drwbases).
        product: String,
        /// current, frozen, delayed or on-demand.
        #[arg(value_parser = |s: &str| s.parse::<Mode>())]
        mode: Mode,
    },
}

/// `products [--json]` and `products set`.
pub(super) async fn products(
    data: &std::path::Path,
    json: bool,
    command: Option<ProductsCommand>,
) -> Result<()> {
    let hub = Hub::open(data)?;
    match command {
        None => {
            let decisions = hub.products().await?;
            if json {
                print_json(&decisions)?;
            } else {
                table(&decisions)?;
            }
        }
        Some(ProductsCommand::Set { product, mode }) => {
            hub.set_product_mode(&product, mode)?;
            let what = match mode {
                Mode::Current => "follows the zone: a new revision is published at the next scheduled mirror".to_owned(),
                Mode::Frozen => format!("is frozen: it keeps its revision whatever the zone offers, until `updhub products set {product} current`"),
                Mode::Delayed => format!(
                    "is delayed: a new revision waits {} (publish.delay), or until `updhub release {product}`",
                    humantime::format_duration(hub.live().publish.delay)
                ),
                Mode::OnDemand => format!(
                    "is on demand: a new revision waits until `updhub release {product}`"
                ),
            };
            out!("{product} {what} (for the whole cluster)");
        }
    }
    Ok(())
}

/// After a mirror run: a line for each product the policy did not take from the zone.
pub(super) fn notes(decisions: &[Decision]) -> Result<()> {
    for d in decisions {
        if d.take == Take::Zone || (!d.included && d.current.is_none()) {
            continue;
        }
        out!("  {:<22} {}", d.product, next(d));
    }
    Ok(())
}

/// `release PRODUCT`.
pub(super) async fn release(data: &std::path::Path, product: &str) -> Result<()> {
    let hub = Hub::open(data)?;
    let (revision, u) = hub.release(product).await?;
    out!("released {product} revision {revision}");
    round(&hub, &u)
}

/// `update`.
pub(super) async fn update(data: &std::path::Path) -> Result<()> {
    let hub = Hub::open(data)?;
    let u = hub.update().await?;
    round(&hub, &u)
}

fn round(hub: &Hub, u: &crate::hub::Update) -> Result<()> {
    out!("{}", u.mirrored);
    notes(&u.mirrored.products)?;
    let Some(p) = &u.published else {
        out!("nothing new to publish: the cluster's version already holds it");
        return Ok(());
    };
    let staged = hub.rollout()?.filter(|r| r.staged.number == p.number);
    out!(
        "{} version {} root {} expires {}",
        if staged.is_some() {
            "staged"
        } else {
            "published"
        },
        p.number,
        p.root,
        p.expires
    );
    super::publish_outcome(hub, p, staged)
}

fn table(decisions: &[Decision]) -> Result<()> {
    out!(
        "{:<24} {:<10} {:<12} {:<12} {:<12} NEXT VERSION",
        "PRODUCT",
        "MODE",
        "CURRENT",
        "ZONE",
        "WAITING"
    );
    for d in decisions {
        let waiting = d.waiting.as_ref().map(|w| w.revision.clone());
        let next = next(d);
        out!(
            "{:<24} {:<10} {:<12} {:<12} {:<12} {next}",
            d.product,
            d.mode.as_str(),
            or_dash(d.current.as_deref()),
            or_dash(d.zone.as_deref()),
            or_dash(waiting.as_deref()),
        );
    }
    Ok(())
}

/// What the next version does with `d`'s product, in words.
fn next(d: &Decision) -> String {
    match (&d.take, &d.waiting) {
        _ if !d.included => "left out (upstream.products)".to_owned(),
        (Take::Zone, _) if d.current.as_deref() == d.zone.as_deref() => "unchanged".into(),
        (Take::Zone, _) => format!("takes {}", or_dash(d.zone.as_deref())),
        (_, Some(w)) => match w.until {
            Some(t) => format!(
                "{} waits till {} (or `updhub release {}`)",
                w.revision,
                t.format("%Y-%m-%d %H:%M UTC"),
                d.product
            ),
            None => format!("{} waits for `updhub release {}`", w.revision, d.product),
        },
        (Take::Keep, None) if d.mode == Mode::Frozen => {
            format!("keeps {} (frozen)", or_dash(d.current.as_deref()))
        }
        (Take::Keep, None) => format!("keeps {}", or_dash(d.current.as_deref())),
        (Take::Leave, None) => "left out (gone from the zone)".into(),
    }
}

/// A revision, or "-" for none.
fn or_dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}
