//! `kizuna ssmix2 …`: validate and generate SS-MIX2 data.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Ssmix2Command {
    /// Parse a file name and print its parts (a quick check of a single name).
    Name {
        /// A standardized-storage file name or relative path.
        name: String,
    },
}

pub fn run(cmd: Ssmix2Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Ssmix2Command::Name { name } => {
            let parsed = if name.contains('/') {
                ssmix2::StoragePath::parse(&name).map(|p| p.name)
            } else {
                name.parse::<ssmix2::FileName>()
            };
            match parsed {
                Ok(n) => {
                    println!("patient    {}", n.patient);
                    println!("care date  {}", n.care_date);
                    println!("data type  {} ({})", n.data_type, n.data_type.meaning());
                    println!("order no   {}", n.order_no);
                    println!("timestamp  {}", n.timestamp);
                    println!("department {}", n.department);
                    println!("flag       {}", n.flag);
                    println!("path       {}", ssmix2::StoragePath::of(n));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{name}: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
