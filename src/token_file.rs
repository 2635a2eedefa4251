//! Reading a Consul ACL token from a file, the one rule both readers share:
//! `cli` reads the file once at startup (a file that cannot be read stops
//! the program), `consul::credentials` again whenever it changes (a file
//! that cannot be read keeps the last token). What happens on failure is
//! theirs to decide; this only reads.

use std::path::Path;

use crate::config::Token;

/// The token in the file at `path`, without surrounding white space;
/// `None` for an empty file.
pub fn read(path: &Path) -> std::io::Result<Option<Token>> {
    let secret = std::fs::read_to_string(path)?.trim().to_owned();
    Ok((!secret.is_empty()).then(|| Token::new(secret)))
}
