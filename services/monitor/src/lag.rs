//! The replication lag rule's input: one gauge read from a Prometheus text endpoint (the backup
//! service's `/metrics`). The rule fires above `max`, and also when the gauge cannot be read (a
//! backup that cannot be asked is not known to be in step).

use crate::config::Config;
use crate::health::{Finding, Health, Rule};

/// The value of `metric` in Prometheus/OpenMetrics text. With labels (`name{replica="dr"}`) the
/// sample must match exactly; a bare name takes the largest value over all its label sets (the
/// worst replica).
pub fn sample(text: &str, metric: &str) -> Option<f64> {
    let values = text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let space = l.find(' ')?;
        let end = match l.find('{') {
            Some(b) if b < space => l[b..].find('}')? + b + 1,
            _ => space,
        };
        let (series, rest) = l.split_at(end);
        let name = series.split('{').next().unwrap_or(series);
        let hit = if metric.contains('{') { series == metric } else { name == metric };
        if !hit {
            return None;
        }
        rest.split_whitespace().next()?.parse::<f64>().ok()
    });
    values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// Reads the gauge: `Ok(value)` or `Err(why not)`.
pub async fn read(url: &str, metric: &str) -> Result<f64, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| e.to_string())?;
    sample(&text, metric).ok_or_else(|| format!("{url} has no sample {metric}"))
}

/// The rule's finding, if it fires.
pub async fn finding(cfg: &Config) -> Option<Finding> {
    let l = &cfg.rules.replication_lag;
    if !l.enabled {
        return None;
    }
    let summary = match read(&l.metrics_url, &l.metric).await {
        Ok(v) if v > l.max => format!("{} is {v}, above the limit of {}", l.metric, l.max),
        Ok(_) => return None,
        Err(e) => format!("cannot read the replication lag gauge: {e}"),
    };
    Some(Finding { rule: Some(Rule::ReplicationLag), health: Health::Error, summary, samples: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let text = "# TYPE kizuna_backup_lag_entries gauge\nkizuna_backup_lag_entries{replica=\"a\"} 12\nkizuna_backup_lag_entries{replica=\"b\"} 7.5\nother 1\n";
        assert_eq!(sample(text, "kizuna_backup_lag_entries{replica=\"b\"}"), Some(7.5));
        assert_eq!(sample(text, "other"), Some(1.0));
        assert_eq!(sample(text, "kizuna_backup_lag_entries"), Some(12.0));
        assert_eq!(sample(text, "missing"), None);
    }
}
