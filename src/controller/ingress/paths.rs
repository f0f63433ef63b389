//! An Ingress path (with its pathType, the host's `use-regex` and the Ingress's
//! `rewrite-target`) -> the route's path condition and upstream path rewrite.
//!
//! ingress-nginx turns a `rewrite-target` into an nginx `rewrite REGEX TARGET`, which
//! replaces the whole path with TARGET after substituting `$n`. sluice's routes rewrite a
//! matched prefix only, so the forms that are a prefix replacement are translated exactly
//! and every other form is refused (never served with a different rewrite).

use crate::config::{PathMatch, PathRegex};

/// A path's route condition and its rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The route's path condition.
    pub path: PathMatch,
    /// Replacement of the matched prefix upstream (`rewrite-target`), if any.
    pub rewrite: Option<String>,
}

/// Translates one Ingress path. `regex_host`: an Ingress on the same host sets `use-regex`
/// or `rewrite-target`, which in ingress-nginx makes every non-Exact path of the host a
/// case-insensitive regular expression matched as a prefix.
pub fn translate(
    path: &str,
    path_type: &str,
    regex_host: bool,
    rewrite_target: Option<&str>,
) -> Result<Translated, String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with /"));
    }
    if !matches!(path_type, "Exact" | "Prefix" | "ImplementationSpecific") {
        return Err(format!(
            "pathType {path_type:?} is not Exact, Prefix or ImplementationSpecific"
        ));
    }
    if let Some(target) = rewrite_target {
        return rewrite(path, path_type, target);
    }
    let path = if path_type == "Exact" {
        PathMatch::Exact(path.to_owned())
    } else if regex_host {
        PathMatch::Regex(nginx_regex(path)?)
    } else {
        PathMatch::Prefix(trim_slash(path).to_owned())
    };
    Ok(Translated {
        path,
        rewrite: None,
    })
}

/// ingress-nginx's `location ~* "^PATH"`: case-insensitive, a prefix of the path.
fn nginx_regex(path: &str) -> Result<PathRegex, String> {
    PathRegex::new(&format!("(?i)(?:{path}).*"))
        .map_err(|e| format!("path {path:?} is not a valid regular expression: {e}"))
}

/// `/api/` -> `/api`; `/` stays.
fn trim_slash(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

/// The `rewrite-target` forms that are a prefix replacement:
///
/// - `PREFIX(/|$)(.*)` with `TARGET/$2` (the form ingress-nginx documents) and
///   `PREFIX/(.*)` with `TARGET/$1`: the literal PREFIX is replaced by TARGET;
/// - a target without `$` on an `Exact` path: that path is replaced.
fn rewrite(path: &str, path_type: &str, target: &str) -> Result<Translated, String> {
    let unsupported = || {
        Err(format!(
            "rewrite-target {target:?} with path {path:?}: sluice rewrites only the forms PREFIX(/|$)(.*) -> TARGET/$2 and PREFIX/(.*) -> TARGET/$1 (PREFIX a literal path, TARGET ending in /), and a target without $ on an Exact path"
        ))
    };
    if !target.starts_with('/') {
        return unsupported();
    }
    if !target.contains('$') {
        return if path_type == "Exact" {
            Ok(Translated {
                path: PathMatch::Exact(path.to_owned()),
                rewrite: Some(target.to_owned()),
            })
        } else {
            unsupported()
        };
    }
    let forms = [("(/|$)(.*)", "$2"), ("/(.*)", "$1")];
    for (suffix, group) in forms {
        let (Some(prefix), Some(base)) = (path.strip_suffix(suffix), target.strip_suffix(group))
        else {
            continue;
        };
        let literal = prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '~'));
        if !literal || !base.ends_with('/') || base.contains('$') {
            return unsupported();
        }
        let prefix = if prefix.is_empty() {
            "/"
        } else {
            trim_slash(prefix)
        };
        return Ok(Translated {
            path: PathMatch::Prefix(prefix.to_owned()),
            rewrite: Some(base.to_owned()),
        });
    }
    unsupported()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str, rewrite: Option<&str>) -> Translated {
        Translated {
            path: PathMatch::Prefix(p.to_owned()),
            rewrite: rewrite.map(str::to_owned),
        }
    }

    #[test]
    fn prefix_paths_lose_their_trailing_slash() {
        assert_eq!(
            translate("/api/", "Prefix", false, None),
            Ok(prefix("/api", None))
        );
        assert_eq!(
            translate("/", "ImplementationSpecific", false, None),
            Ok(prefix("/", None))
        );
    }

    #[test]
    fn exact_paths_stay_exact_even_on_a_regex_host() {
        let t = translate("/login", "Exact", true, None).unwrap();
        assert_eq!(t.path, PathMatch::Exact("/login".into()));
    }

    #[test]
    fn a_regex_host_matches_paths_case_insensitively_as_a_prefix() {
        let t = translate("/api/v[0-9]+", "ImplementationSpecific", true, None).unwrap();
        assert!(t.path.matches("/API/v2/users"));
        assert!(t.path.matches("/api/v10"));
        assert!(!t.path.matches("/x/api/v1"));
        let alt = translate("/a|/b", "Prefix", true, None).unwrap();
        assert!(alt.path.matches("/a/x") && alt.path.matches("/b/x"));
    }

    #[test]
    fn an_invalid_regex_is_an_error_naming_the_path() {
        let e = translate("/a(", "ImplementationSpecific", true, None).unwrap_err();
        assert!(e.contains("\"/a(\""), "{e}");
    }

    #[test]
    fn the_documented_capture_rewrite_becomes_a_prefix_replacement() {
        let t = translate(
            "/something(/|$)(.*)",
            "ImplementationSpecific",
            true,
            Some("/$2"),
        );
        assert_eq!(t, Ok(prefix("/something", Some("/"))));
        let t = translate("/app/(.*)", "Prefix", false, Some("/v2/$1"));
        assert_eq!(t, Ok(prefix("/app", Some("/v2/"))));
        let t = translate("/(.*)", "Prefix", false, Some("/$1"));
        assert_eq!(t, Ok(prefix("/", Some("/"))));
    }

    #[test]
    fn rewrites_sluice_cannot_express_are_refused() {
        for (path, target, ty) in [
            ("/api", "/", "Prefix"),
            ("/api(/|$)(.*)", "/$1", "Prefix"),
            ("/api(/|$)(.*)", "/v2$2", "Prefix"),
            ("/a.b(/|$)(.*)", "/$2", "Prefix"),
            ("/api/(.*)/x", "/$1", "Prefix"),
            ("/api(/|$)(.*)", "$2", "Prefix"),
        ] {
            let e = translate(path, ty, true, Some(target)).unwrap_err();
            assert!(e.contains("rewrite-target"), "{path} {target}: {e}");
        }
    }

    #[test]
    fn a_static_rewrite_on_an_exact_path_replaces_it() {
        let t = translate("/old", "Exact", false, Some("/new")).unwrap();
        assert_eq!(t.path, PathMatch::Exact("/old".into()));
        assert_eq!(t.rewrite.as_deref(), Some("/new"));
    }

    #[test]
    fn unknown_path_types_and_relative_paths_are_errors() {
        assert!(translate("/a", "Glob", false, None).is_err());
        assert!(translate("a", "Prefix", false, None).is_err());
    }
}
