//! `quadbench keygen --out KEY`: an Ed25519 key pair for signing qualification bundles: KEY
//! (the secret seed, mode 0600) and KEY.pub, in the text format of [`crate::qualify::sign`].

use super::exit::{self, OK};
use crate::qualify::sign;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Secret key file to write (KEY.pub is written beside it); never overwritten.
    #[arg(long)]
    out: PathBuf,
}

pub fn keygen(a: KeygenArgs) -> i32 {
    match sign::keygen(&a.out) {
        Ok((id, public)) => {
            eprintln!("secret key: {} (mode 0600; keep it private)", a.out.display());
            eprintln!("public key: {}", public.display());
            println!("{id}");
            OK
        }
        Err(e) => exit::fail(&e),
    }
}
