//! A database URL's engine, by its scheme, and the checks and descriptions
//! of that engine's module. Kept apart from the seam in `store`, which the
//! engines' modules name: this module names them.

use crate::config::Engine;
use crate::store::{mysql, postgres};

/// Checks a database URL without contacting anything. The problem it
/// returns never repeats the URL, which holds the password.
pub fn check_url(url: &str) -> Result<Engine, String> {
    const FORMS: &str =
        "mysql://user:password@host:port/database or postgres://user:password@host:port/database";
    let engine = Engine::of(url).ok_or_else(|| match url.split_once("://") {
        Some((scheme, _)) => format!("the scheme is {scheme:?}; it must be {FORMS}"),
        None => format!("it is not a URL of the form {FORMS}"),
    })?;
    match engine {
        Engine::MySql => mysql::check_url(url)?,
        Engine::Postgres => postgres::check_url(url)?,
    }
    Ok(engine)
}

/// Where a URL of `engine` (checked by [`check_url`]) points, without its
/// password: for log lines.
pub fn describe(engine: Engine, url: &str) -> String {
    match engine {
        Engine::MySql => mysql::describe(url),
        Engine::Postgres => postgres::describe(url),
    }
}

/// The database a URL of `engine` (checked by [`check_url`]) names.
pub fn database_name(engine: Engine, url: &str) -> String {
    match engine {
        Engine::MySql => mysql::database_name(url),
        Engine::Postgres => postgres::database_name(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_engine() {
        assert_eq!(check_url("mysql://u:p@h:3306/db"), Ok(Engine::MySql));
        assert_eq!(check_url("postgres://u:p@h:5432/db"), Ok(Engine::Postgres));
        assert_eq!(check_url("PostgreSQL://u@h/db"), Ok(Engine::Postgres));
    }

    #[test]
    fn another_scheme_is_named_with_both_forms_and_no_password() {
        for url in [
            "http://u:secret@h/db",
            "mariadb://u:secret@h/db",
            "u:secret@h/db",
        ] {
            let problem = check_url(url).unwrap_err();
            assert!(
                problem.contains("mysql://") && problem.contains("postgres://"),
                "{problem}"
            );
            assert!(!problem.contains("secret"), "{problem}");
        }
    }
}
