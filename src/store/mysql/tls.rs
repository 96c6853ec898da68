//! TLS for a connection, the primary's and the replicas' alike.

use std::path::PathBuf;

use mysql_async::{Opts, SslOpts};

/// A private CA turns TLS on, and the server's certificate must chain to it;
/// without one, the URL's own `require_ssl=true` (with `verify_ca`,
/// `verify_identity`) or plaintext.
pub(super) fn ssl_opts(opts: &Opts, ca_file: Option<&PathBuf>) -> Option<SslOpts> {
    match ca_file {
        Some(ca) => Some(
            opts.ssl_opts()
                .cloned()
                .unwrap_or_default()
                .with_root_certs(vec![ca.clone().into()]),
        ),
        None => opts.ssl_opts().cloned(),
    }
}
