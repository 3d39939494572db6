//! `quadbench verify BUNDLE --public-key KEY.pub`: check a qualification bundle offline (no
//! device, runtime or network): signature, subject hashes, run rules, every verdict re-derived
//! from the evidence. Exit 0 when all hold; 1 with one line per failed check on stdout; 2 when
//! the bundle or key cannot be read or the bundle's format is newer than this quadbench.

use super::exit::{self, CLAIMS_FAILED, OK};
use crate::qualify::sign;
use crate::qualify::verify;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Bundle directory written by `quadbench qualify`.
    bundle: PathBuf,
    /// The signer's public key (KEY.pub from `quadbench keygen`).
    #[arg(long)]
    public_key: PathBuf,
}

pub fn verify(a: VerifyArgs) -> i32 {
    let vk = match sign::read_public_key(&a.public_key) {
        Ok(k) => k,
        Err(e) => return exit::fail(&e),
    };
    match verify::verify(&a.bundle, &vk) {
        Err(e) => exit::fail(&e),
        Ok(fails) if fails.is_empty() => {
            println!("verified: {} (signed by {})", a.bundle.display(), sign::key_id(&vk));
            OK
        }
        Ok(fails) => {
            for f in &fails {
                println!("FAIL {f}");
            }
            eprintln!("{}: {} check(s) failed", a.bundle.display(), fails.len());
            CLAIMS_FAILED
        }
    }
}
