//! `#[oasis::main]`: marks the application's `async fn main(os: Os) -> Result<(), E>`.
//!
//! The attribute keeps the function as written and adds the entry symbol
//! `__oasis_start` that both platforms call once the machine is set up (the PVH boot
//! path on `kvm`, the C `main` on `hosted`). Applications stay free of `unsafe`: the
//! exported symbol is generated here, the same way `cortex-m-rt`'s `#[entry]` works.
#![forbid(unsafe_code)]

use proc_macro::{Delimiter, TokenStream, TokenTree};

/// Turns `async fn NAME(os: oasis::Os) -> Result<(), E>` into the program's entry.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("#[oasis::main] takes no arguments");
    }
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let mut is_async = false;
    let mut name = None;
    for pair in tokens.windows(2) {
        if let (TokenTree::Ident(a), TokenTree::Ident(b)) = (&pair[0], &pair[1]) {
            if a.to_string() == "async" {
                is_async = true;
            }
            if a.to_string() == "fn" {
                name = Some(b.to_string());
                break;
            }
        }
    }
    let Some(name) = name else {
        return error(
            "#[oasis::main] goes on a function: `async fn main(os: oasis::Os) -> Result<(), E>`",
        );
    };
    if !is_async {
        return error("#[oasis::main] needs an `async fn`");
    }
    let has_body = tokens
        .last()
        .is_some_and(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace));
    if !has_body {
        return error("#[oasis::main] needs a function with a body");
    }
    let entry: TokenStream = format!(
        "#[doc(hidden)]\n\
         #[unsafe(export_name = \"__oasis_start\")]\n\
         fn __oasis_start() -> ! {{ ::oasis::__private::start({name}) }}"
    )
    .parse()
    .expect("generated entry parses");
    let mut out = item;
    out.extend(entry);
    out
}

fn error(msg: &str) -> TokenStream {
    format!("::core::compile_error!({msg:?});")
        .parse()
        .expect("compile_error parses")
}
