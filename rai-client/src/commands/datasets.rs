//! `rai datasets`: the datasets the course offers to jobs. A build file asks for one with
//! `resources.datasets: [NAME]`, and the job finds it read-only at `/data/NAME`, without uploading it.

use rai_common::api::Datasets;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(global: &GlobalArgs, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let datasets = session.client.datasets().await?;
    if json {
        for d in &datasets.datasets {
            println!("{}", serde_json::to_string(d)?);
        }
        return Ok(exit::OK);
    }
    print!("{}", table(&datasets));
    Ok(exit::OK)
}

/// The table `rai datasets` prints, with how to use one.
pub fn table(datasets: &Datasets) -> String {
    if datasets.datasets.is_empty() {
        return "This course offers no datasets: put the data your project needs in its folder.\n"
            .to_string();
    }
    let width = datasets
        .datasets
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(0)
        .max("DATASET".len());
    let mount_width = width + "/data/".len();
    let mut out = format!(
        "{:<width$}  {:<mount_width$}  ABOUT\n",
        "DATASET", "IN THE JOB"
    );
    for d in &datasets.datasets {
        out.push_str(&format!(
            "{:<width$}  {:<mount_width$}  {}\n",
            visible(&d.name),
            format!("/data/{}", visible(&d.name)),
            visible(&d.about)
        ));
    }
    out.push_str(
        "\nAsk for one in rai_build.yml (read-only in the job, never uploaded):\n  resources:\n    datasets: [NAME]\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::api::DatasetView;

    #[test]
    fn the_table_says_where_each_dataset_is_and_how_to_ask() {
        let t = table(&Datasets {
            datasets: vec![DatasetView {
                name: "imagenet-mini".into(),
                about: "ImageNet, 64x64".into(),
            }],
        });
        assert!(t.contains("imagenet-mini  /data/imagenet-mini"), "{t}");
        assert!(t.contains("ImageNet, 64x64"));
        assert!(t.contains("datasets: [NAME]"));
        assert!(table(&Datasets { datasets: vec![] }).contains("no datasets"));
    }
}
