//! `#[trace]`: records a function call as a span. Use it as `#[loupe_sdk::trace]`; this crate
//! only expands the attribute (the runtime lives in `loupe-sdk`).
//!
//! ```text
//! #[loupe_sdk::trace(name = "retrieve", span_type = "RETRIEVER", skip(client))]
//! async fn retrieve(client: &Client, query: &str, k: usize) -> Result<Vec<Doc>, Error> { … }
//! ```
//!
//! Arguments become the span's inputs and the return value its outputs (both through serde;
//! a type that is not `Serialize` is a compile error at the argument unless it is skipped). An
//! `Err` marks the span `ERROR` with an exception event; so does a panic. Sync and async
//! functions, methods included.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Lit, LitStr, Meta, Pat, ReturnType, Signature, Token};

/// Span types Loupe understands (others are refused, to catch typos at compile time).
const SPAN_TYPES: &[&str] = &[
    "LLM",
    "CHAT_MODEL",
    "EMBEDDING",
    "RETRIEVER",
    "RERANKER",
    "TOOL",
    "AGENT",
    "CHAIN",
    "PARSER",
    "GUARDRAIL",
    "EVALUATOR",
    "MEMORY",
    "UNKNOWN",
];

#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    span_type: Option<LitStr>,
    skip: Vec<Ident>,
    skip_all: bool,
    skip_output: bool,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut out = Options::default();
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        for meta in metas {
            match &meta {
                Meta::NameValue(nv)
                    if nv.path.is_ident("name") || nv.path.is_ident("span_type") =>
                {
                    let Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(s), ..
                    }) = &nv.value
                    else {
                        return Err(syn::Error::new(
                            nv.value.span(),
                            "expected a string literal",
                        ));
                    };
                    if nv.path.is_ident("name") {
                        if out.name.replace(s.clone()).is_some() {
                            return Err(syn::Error::new(nv.span(), "`name` given twice"));
                        }
                    } else {
                        if !SPAN_TYPES.contains(&s.value().as_str()) {
                            return Err(syn::Error::new(
                                s.span(),
                                format!(
                                    "unknown span type {:?}; expected one of {}",
                                    s.value(),
                                    SPAN_TYPES.join(", ")
                                ),
                            ));
                        }
                        if out.span_type.replace(s.clone()).is_some() {
                            return Err(syn::Error::new(nv.span(), "`span_type` given twice"));
                        }
                    }
                }
                Meta::List(list) if list.path.is_ident("skip") => {
                    let idents =
                        list.parse_args_with(Punctuated::<Ident, Token![,]>::parse_terminated)?;
                    out.skip.extend(idents);
                }
                Meta::Path(p) if p.is_ident("skip_all") => out.skip_all = true,
                Meta::Path(p) if p.is_ident("skip_output") => out.skip_output = true,
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "unknown option; expected name = \"…\", span_type = \"…\", skip(arg, …), skip_all or skip_output",
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Records a function call as a span; see the crate documentation.
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = match syn::parse::<Options>(attr) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let func = match syn::parse::<ItemFn>(item) {
        Ok(f) => f,
        Err(e) => {
            return syn::Error::new(e.span(), "#[trace] goes on a function")
                .to_compile_error()
                .into();
        }
    };
    match expand(opts, func) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(opts: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    if func.sig.constness.is_some() {
        return Err(syn::Error::new(
            func.sig.constness.span(),
            "#[trace] cannot go on a const fn",
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&sig.ident.to_string(), sig.ident.span()));
    let span_type = opts
        .span_type
        .clone()
        .unwrap_or_else(|| LitStr::new("UNKNOWN", Span::call_site()));
    let record = record_inputs(&opts, &sig)?;
    let record_output = record_output(&opts, &sig);
    // `impl Trait` cannot be named in a `let` or a closure: leave those types to inference.
    let output = match &sig.output {
        ReturnType::Type(_, ty) if quote!(#ty).to_string().contains("impl") => quote! { _ },
        ReturnType::Type(_, ty) => quote! { #ty },
        ReturnType::Default => quote! { () },
    };
    let closure_ret = if output.to_string() == "_" {
        quote! {}
    } else {
        quote! { -> #output }
    };
    let start = quote! {
        let mut __loupe_span = ::loupe_sdk::__private::start(#name, #span_type);
        if __loupe_span.is_recording() {
            let mut __loupe_inputs = ::loupe_sdk::__private::Inputs::new();
            #(#record)*
            __loupe_span.__record_inputs(__loupe_inputs);
        }
    };
    let body = if sig.asyncness.is_some() {
        quote! {
            #start
            let __loupe_ctx = __loupe_span.context();
            let __loupe_out: #output = ::loupe_sdk::__private::Instrumented::new(
                async move #block,
                __loupe_ctx,
            ).await;
            #record_output
            __loupe_out
        }
    } else {
        quote! {
            #start
            let __loupe_out: #output = {
                let __loupe_entered = __loupe_span.enter();
                #[allow(clippy::redundant_closure_call)]
                (move || #closure_ret #block)()
            };
            #record_output
            __loupe_out
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

/// The statements that add each recorded argument to `__loupe_inputs`; an error when a skipped
/// name is not an argument, or an argument to record is a pattern rather than a name.
fn record_inputs(opts: &Options, sig: &Signature) -> syn::Result<Vec<TokenStream2>> {
    let named = |a: &FnArg| match a {
        FnArg::Typed(t) => match &*t.pat {
            Pat::Ident(p) => Some(p.ident.clone()),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    };
    for s in &opts.skip {
        if !sig.inputs.iter().filter_map(named).any(|a| a == *s) {
            return Err(syn::Error::new(
                s.span(),
                format!("`{s}` is not an argument of this function"),
            ));
        }
    }
    let mut record = Vec::new();
    if opts.skip_all {
        return Ok(record);
    }
    for a in &sig.inputs {
        let FnArg::Typed(t) = a else {
            continue;
        };
        let Pat::Ident(p) = &*t.pat else {
            return Err(syn::Error::new(
                t.pat.span(),
                "#[trace] records named arguments: bind this pattern to a name, or use skip_all",
            ));
        };
        let id = &p.ident;
        if opts.skip.iter().any(|s| s == id) {
            continue;
        }
        let key = id.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_string();
        let ty = &t.ty;
        record.push(quote_spanned! {ty.span()=>
            __loupe_inputs.add(#key, ::loupe_sdk::__private::recordable(&#id));
        });
    }
    Ok(record)
}

/// The statement that records `__loupe_out` on the span (nothing with `skip_output`).
fn record_output(opts: &Options, sig: &Signature) -> TokenStream2 {
    if opts.skip_output {
        return quote! {};
    }
    let span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    quote_spanned! {span=>
        {
            #[allow(unused_imports)]
            use ::loupe_sdk::__private::{
                RecordDebugError as _, RecordDisplayError as _, RecordSerializeError as _,
                RecordValue as _,
            };
            (&&&&::loupe_sdk::__private::Out(&__loupe_out)).record(&mut __loupe_span);
        }
    }
}
