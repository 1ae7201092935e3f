//! `relay-load`: bridge N calls through an in-process engine on loopback and
//! pump RTP through all of them. See `benches/README.md`.

use std::process::ExitCode;

use maskline_benches::load::{self, Parsed};

fn main() -> ExitCode {
    let config = match load::parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help) => {
            print!("{}", load::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("relay-load: {e}");
            return ExitCode::from(2);
        }
    };
    match load::run(&config) {
        Ok(report) => {
            print!("{report}");
            if report.calls_set_up == 0 {
                eprintln!("relay-load: no call was set up");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relay-load: {e}");
            ExitCode::FAILURE
        }
    }
}
