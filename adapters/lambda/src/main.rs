//! `bootstrap`: the Lambda function's executable (provided.al2023 runtime).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // CloudWatch stamps every line itself; JSON lines are searchable in Logs Insights.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .with_current_span(true)
        .with_span_list(false)
        .init();
    let config = nhc_lambda::Config::from_env()?;
    let app = nhc_lambda::app(&config).await?;
    lambda_http::run(app).await
}
