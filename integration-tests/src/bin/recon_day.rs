//! `recon-day --out DIR [--seed N] [--repeats N] [--max-lines N]`: writes one generated
//! reconciliation day (`incasso_integration_tests::recon_day`) to a folder, for the finance
//! office's trials:
//!
//! - `evidence/`: the reporting flows (FlussoRiversamento, both revisions of the revised ones)
//!   and the treasury documents (camt.053, camt.054, OPI giornale di cassa), ready for
//!   `incasso recon import DIR/evidence` (configure Milan's `opi_entity_code` as `C0MI01`);
//! - `receipts/`: the paSendRT / paSendRTV2 requests in delivery order, to POST to
//!   `/paForNode` with the SOAPAction in the file name;
//! - `truth.json`: every transfer key, credit and flow with the label and state the contract
//!   gives it; `summary.txt`: the counts per label.
//!
//! The notices are numbered as incasso numbers Milan's first ones; against a server that did
//! not issue them they are notices of another system, which the contract reconciles the same
//! way (labels depend on the evidence only), so the truth holds.

use std::path::PathBuf;

use anyhow::{Context, bail};
use incasso_integration_tests::recon_day::{DayShape, Plan, summary};

fn main() -> anyhow::Result<()> {
    let mut out: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut repeats = 1usize;
    let mut max_lines = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(value("--out")?.into()),
            "--seed" => seed = value("--seed")?.parse().context("--seed: not a number")?,
            "--repeats" => {
                repeats = value("--repeats")?
                    .parse()
                    .context("--repeats: not a number")?;
            }
            "--max-lines" => {
                max_lines = value("--max-lines")?
                    .parse()
                    .context("--max-lines: not a number")?;
            }
            other => bail!(
                "unknown argument '{other}'; usage: recon-day --out DIR [--seed N] [--repeats N] [--max-lines N]"
            ),
        }
    }
    let out = out.context("--out DIR is required")?;
    let plan = Plan::generate(seed, DayShape::scaled(repeats, max_lines));
    let day = plan.day(&plan.synthetic_notices())?;

    let evidence = out.join("evidence");
    let receipts = out.join("receipts");
    std::fs::create_dir_all(&evidence)
        .with_context(|| format!("creating {}", evidence.display()))?;
    std::fs::create_dir_all(&receipts)
        .with_context(|| format!("creating {}", receipts.display()))?;
    for document in &day.documents {
        std::fs::write(evidence.join(&document.name), &document.content)?;
    }
    for (n, receipt) in day.receipts.iter().enumerate() {
        let name = format!(
            "{:05}-{}-{}.xml",
            n + 1,
            receipt.soap_action(),
            receipt.spec.receipt_id
        );
        std::fs::write(receipts.join(name), receipt.envelope())?;
    }
    std::fs::write(out.join("truth.json"), day.truth.to_json())?;
    let summary = summary(&day.truth);
    std::fs::write(out.join("summary.txt"), &summary)?;
    println!(
        "seed {seed}: {} receipts, {} documents written to {}",
        day.receipts.len(),
        day.documents.len(),
        out.display()
    );
    print!("{summary}");
    Ok(())
}
