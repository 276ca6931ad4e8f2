//! Prints ovswire's CustomResourceDefinitions, or writes them into a directory.
//!
//! ```sh
//! ovswire-crdgen                      # both CRDs on stdout, as one YAML stream
//! ovswire-crdgen --write deploy/crds  # one file per CRD
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: ovswire-crdgen [--write DIR]\n\
    Prints ovswire's CustomResourceDefinitions as YAML, or writes one file per CRD into DIR \
    (the repository keeps them in deploy/crds).";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files = ovswire_k8s::crdgen::crd_files()?;
    match args.as_slice() {
        [] => {
            let docs: Vec<&str> = files.iter().map(|f| f.yaml.as_str()).collect();
            print!("{}", docs.join("---\n"));
        }
        [flag, dir] if flag == "--write" => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for f in &files {
                let path = dir.join(f.file_name);
                std::fs::write(&path, &f.yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        [flag] if flag == "-h" || flag == "--help" => println!("{USAGE}"),
        _ => bail!("unexpected arguments {args:?}\n{USAGE}"),
    }
    Ok(())
}
