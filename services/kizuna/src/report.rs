//! The one line `kizuna` prints for a failed command.

/// `e` and its causes joined by `: `, skipping a cause whose text the message before it already
/// ends with: library errors that show their source in their own text (`store: {0}` with
/// `#[from]`) would otherwise print the same reason two or three times.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.is_empty() && previous.ends_with(&text) {
            previous = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_shown_by_each_layer_is_printed_once() {
        let tables =
            ssmix2::validate::TableError::NotFound { tried: vec!["/usr/share/kizuna/nho-tables".into()] };
        let store = kizuna_store::StoreError::from(tables);
        let backup = kizuna_backup::BackupError::from(store);
        let e = anyhow::Error::new(backup).context("promote");
        let line = error_line(&e);
        assert_eq!(line.matches("NHO validator tables not found").count(), 1, "{line}");
        assert!(
            line.starts_with("promote: store: validator tables: NHO validator tables not found"),
            "{line}"
        );
        assert!(line.ends_with("(looked in: /usr/share/kizuna/nho-tables)"), "{line}");
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(io).context("writing /var/lib/kizuna/x").context("checkpoint");
        assert_eq!(error_line(&e), "checkpoint: writing /var/lib/kizuna/x: disk on fire");
    }
}
