//! Conformance of the local Step Functions with the AWS Step Functions API Reference,
//! `GetExecutionHistory`: "The default is 100 and the maximum allowed page size is 1000. A value
//! of 0 uses the default"; `reverseOrder` "Lists events in descending order of their
//! timeStamp"; "If nextToken is returned, there are more results available ... Using an expired
//! pagination token will return an HTTP 400 InvalidToken error."; `includeExecutionData`: "You
//! can select whether execution data (input or output of a history event) is returned. The
//! default is true." moto answers the whole history
//! at once whatever is asked; the launcher (`local/src/aws/moto_launcher.py`, 5.) pages.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
use hapilot::local::systems::gateway::SimulatedGateway;
use serde_json::json;

use crate::support::TestStack;

fn ids(page: &GetExecutionHistoryOutput) -> Vec<i64> {
    page.events().iter().map(|e| e.id()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_history_comes_in_pages_as_the_api_reference_says() {
    let stack = TestStack::start().await;
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();
    let input = json!({
        "url": gateway.health_url(), "label": "primary", "samples": 3,
        "timeout_ms": 1_000, "interval_ms": 10,
    });
    let outcome = stack.run("health-proof", input).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let sfn = stack.sfn();
    let history = || {
        sfn.get_execution_history()
            .execution_arn(&outcome.execution_arn)
    };

    // Unasked, one page of up to 100, oldest first: this run has fewer events than that.
    let whole = history().send().await.unwrap();
    let all = ids(&whole);
    assert!(all.len() > 8, "a short history: {all:?}");
    assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>());
    assert_eq!(whole.next_token(), None);
    // What `hapilot`'s follower saw, reading newest first page by page.
    let followed: Vec<i64> = outcome.events.iter().map(|e| e.id).collect();
    assert_eq!(followed, all);

    // Pages of four, oldest first, a token while more remain.
    let (mut paged, mut token, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = history()
            .max_results(4)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.events().len() <= 4, "page {pages}: {:?}", ids(&page));
        paged.extend(ids(&page));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, all);
    assert_eq!(pages, all.len().div_ceil(4));

    // Newest first, and its token goes on from where the page ended.
    let newest = history()
        .reverse_order(true)
        .max_results(3)
        .send()
        .await
        .unwrap();
    let newest_first: Vec<i64> = all.iter().rev().copied().collect();
    assert_eq!(ids(&newest), newest_first[..3]);
    let token = newest.next_token().expect("more pages").to_string();
    let next = history()
        .reverse_order(true)
        .max_results(3)
        .next_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&next), newest_first[3..6]);

    // Without execution data: the same events, none with its input or output.
    let bare = history()
        .include_execution_data(false)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&bare), all);
    let input_of_start = |page: &GetExecutionHistoryOutput| {
        page.events()[0]
            .execution_started_event_details()
            .and_then(|d| d.input())
            .map(str::to_string)
    };
    assert!(input_of_start(&whole).is_some(), "{whole:?}");
    assert_eq!(input_of_start(&bare), None);
    let outputs = |page: &GetExecutionHistoryOutput| {
        page.events()
            .iter()
            .filter_map(|e| e.state_exited_event_details())
            .filter(|d| d.output().is_some())
            .count()
    };
    assert!(outputs(&whole) > 0);
    assert_eq!(outputs(&bare), 0);

    // Refusals: a token it did not give, a token used with other arguments, a page too large.
    let refused = |e: aws_sdk_sfn::error::SdkError<_, _>| {
        let e: aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryError =
            e.into_service_error();
        e.code().unwrap_or_default().to_string()
    };
    let junk = history()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(junk), "InvalidToken");
    let other_order = history().next_token(&token).send().await.unwrap_err();
    assert_eq!(refused(other_order), "InvalidToken");
    let too_large = history().max_results(1_001).send().await.unwrap_err();
    assert_eq!(refused(too_large), "ValidationException");
}
