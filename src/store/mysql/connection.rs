//! What the primary's and the replicas' connections share: TLS, and how a
//! server is named in the log, never with its password.

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

/// Where a connection goes, without its password: `mysql://user@host:port/db`.
pub(super) fn describe(opts: &Opts) -> String {
    format!(
        "mysql://{}@{}:{}/{}",
        opts.user().unwrap_or(""),
        opts.ip_or_hostname(),
        opts.tcp_port(),
        opts.db_name().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_described_without_its_password() {
        let url = "mysql://app:s3cret@replica.example:3307/app";
        let described = describe(&Opts::from_url(url).unwrap());
        assert_eq!(described, "mysql://app@replica.example:3307/app");
    }
}
