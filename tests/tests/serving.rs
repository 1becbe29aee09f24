//! What a replica serves besides the API: metrics, reflection (for grpcurl),
//! gRPC-Web with CORS (for browsers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use approval_client::v1;
use approval_tests::*;
use prost::Message;

/// One plain HTTP/1.1 exchange on loopback; returns the raw response.
fn http(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

fn metric(text: &str, name: &str) -> f64 {
    metric_value(text, name).unwrap_or_else(|| panic!("metric {name} not in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_created_decided_pending_and_waiters() {
    let d = Deployment::start(Store::Redis).await;
    let mut a = d.a().await;
    let decided = create(&mut a, "m").await;
    let open = create(&mut a, "m").await;
    a.respond(approve(&decided.id, "alice")).await.unwrap();
    let waiter = spawn_await(&a, &open.id);
    let port = d.replicas[0].metrics_port;
    let text = wait_for(PROMPTLY, || async {
        let text = metrics_text(port).await;
        // A scrape that came back short (a loaded machine) is just retried.
        let has = |line: &str| text.lines().any(|l| l == line);
        (has("approvald_waiters 1") && has("approvald_approvals_pending 1")).then_some(text)
    })
    .await
    .expect("one waiter and one pending approval are reported");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(metric(&text, "approvald_approvals_created_total"), 2.0);
    assert_eq!(
        metric(
            &text,
            "approvald_approvals_finished_total{outcome=\"approved\"}"
        ),
        1.0
    );
    assert!(text.contains("approvald_decision_latency_seconds_bucket"));
    assert!(text.contains("approvald_store_errors_total"));
    waiter.abort();
    let missing = tokio::task::spawn_blocking(move || {
        http(
            port,
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&missing).starts_with("HTTP/1.1 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_api_and_health_in_v1_and_v1alpha() {
    use tokio_stream::StreamExt;
    let d = Deployment::start(Store::Memory).await;
    let channel = d.replicas[0].channel().await;

    use tonic_reflection::pb::v1 as r1;
    let mut client = r1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(reply)) = replies.next().await else {
        panic!("no reflection reply")
    };
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reply")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"approval.v1.ApprovalService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    use tonic_reflection::pb::v1alpha as ra;
    let mut client = ra::server_reflection_client::ServerReflectionClient::new(channel);
    let request = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            ra::server_reflection_request::MessageRequest::FileContainingSymbol(
                "approval.v1.ApprovalService".into(),
            ),
        ),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(reply)) = replies.next().await else {
        panic!("no v1alpha reply")
    };
    assert!(matches!(
        reply.message_response,
        Some(ra::server_reflection_response::MessageResponse::FileDescriptorResponse(f)) if !f.file_descriptor_proto.is_empty()
    ));
}

/// What reflection v1 answers for a file (by name) or a symbol.
async fn reflected_file(
    channel: tonic::transport::Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> Vec<prost_types::FileDescriptorProto> {
    use prost::Message as _;
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1 as r1;
    let mut client = r1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = match replies.next().await {
        Some(Ok(reply)) => reply,
        other => panic!("no reflection reply: {other:?}"),
    };
    match reply.message_response {
        Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(f)) => f
            .file_descriptor_proto
            .iter()
            .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
            .collect(),
        other => panic!("not a file descriptor: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_resolves_the_google_rpc_error_details_in_statuses() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let d = Deployment::start(Store::Memory).await;
    for symbol in ["google.rpc.ErrorInfo", "google.rpc.BadRequest"] {
        let files = reflected_file(
            d.replicas[0].channel().await,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await;
        let (package, message) = symbol.rsplit_once('.').unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.package() == package
                    && f.message_type.iter().any(|m| m.name() == message)),
            "{symbol} not in {:?}",
            files.iter().map(|f| f.name()).collect::<Vec<_>>()
        );
    }
    // grpcurl then fetches the file's imports by name: each must resolve.
    let files = reflected_file(
        d.replicas[0].channel().await,
        MessageRequest::FileContainingSymbol("google.rpc.ErrorInfo".into()),
    )
    .await;
    let details = files
        .iter()
        .find(|f| f.message_type.iter().any(|m| m.name() == "ErrorInfo"))
        .expect("the file of ErrorInfo");
    for import in &details.dependency {
        let files = reflected_file(
            d.replicas[0].channel().await,
            MessageRequest::FileByFilename(import.clone()),
        )
        .await;
        assert!(
            files.iter().any(|f| f.name() == import),
            "{import} not served"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_call_through_grpc_web_with_cors_from_listed_origins() {
    let d = Deployment::start_with(Store::Memory, 1, |c| {
        c.cors_origins = vec!["http://inbox.example".into()]
    })
    .await;
    let mut a = d.a().await;
    let created = create(&mut a, "web").await;
    let port = d.replicas[0].port;

    // CORS preflight from a page on another origin.
    let preflight = tokio::task::spawn_blocking(move || {
        http(
            port,
            b"OPTIONS /approval.v1.ApprovalService/GetApproval HTTP/1.1\r\nHost: x\r\nOrigin: http://inbox.example\r\n\
              Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    let preflight = String::from_utf8_lossy(&preflight).to_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: http://inbox.example"),
        "{preflight}"
    );

    // A gRPC-Web unary call over HTTP/1.1: one length-prefixed message.
    let message = v1::GetApprovalRequest {
        id: created.id.clone(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut request = format!(
        "POST /approval.v1.ApprovalService/GetApproval HTTP/1.1\r\nHost: x\r\nOrigin: http://inbox.example\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let raw = tokio::task::spawn_blocking(move || http(port, &request))
        .await
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end")
        + 4;
    let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(
        headers.contains("content-type: application/grpc-web+proto"),
        "{headers}"
    );
    assert!(
        headers.contains("access-control-allow-origin: http://inbox.example"),
        "{headers}"
    );
    let mut body = decode_chunked(
        &raw[split..],
        headers.contains("transfer-encoding: chunked"),
    );
    // Data frame (flag 0), then the trailers frame (flag 0x80).
    assert_eq!(body[0], 0);
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let reply = v1::GetApprovalResponse::decode(&body[5..5 + len]).expect("a GetApprovalResponse");
    assert_eq!(reply.approval.unwrap().id, created.id);
    let trailers = body.split_off(5 + len);
    assert_eq!(trailers[0], 0x80);
    assert!(String::from_utf8_lossy(&trailers[5..]).contains("grpc-status:0"));
}

fn decode_chunked(body: &[u8], chunked: bool) -> Vec<u8> {
    if !chunked {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_serves_the_inbox_page_with_security_headers_beside_the_api() {
    let d = Deployment::start(Store::Memory).await;
    let port = d.replicas[0].port;
    let get = move |path: &'static str| {
        tokio::task::spawn_blocking(move || {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            String::from_utf8_lossy(&http(port, request.as_bytes())).into_owned()
        })
    };
    for path in [
        "/",
        "/approvals/01a22c47-9bc1-713d-af04-d9df1c12486a",
        "/assets/app.js",
    ] {
        let response = get(path).await.unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{path}: {response:.200}"
        );
        let headers = response.to_ascii_lowercase();
        assert!(
            headers.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{path}"
        );
        assert!(headers.contains("frame-ancestors 'none'"), "{path}");
        assert!(!headers.contains("unsafe-inline"), "{path}");
        assert!(
            headers.contains("x-content-type-options: nosniff"),
            "{path}"
        );
        assert!(headers.contains("referrer-policy: no-referrer"), "{path}");
        assert!(!headers.contains("set-cookie"), "{path}");
    }
    let page = get("/").await.unwrap();
    assert!(page.contains("<script type=\"module\" src=\"/assets/app.js\"></script>"));
    assert!(get("/nope").await.unwrap().starts_with("HTTP/1.1 404"));
    // The API still answers on the same port.
    let mut a = d.a().await;
    let created = create(&mut a, "deploy:web").await;
    assert!(created.context_digest.starts_with("sha256:"));
}

/// A gRPC-Web `CreateApproval` over HTTP/1.1 with these `Host` and `Origin`
/// headers; returns the response head (lowercase) and its grpc-status.
async fn create_from_a_page(port: u16, host: &str, origin: Option<&str>) -> (String, Option<u32>) {
    let message = create_request("web:page").encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let mut request = format!(
        "POST /approval.v1.ApprovalService/CreateApproval HTTP/1.1\r\nHost: {host}\r\n{origin}\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let raw = tokio::task::spawn_blocking(move || http(port, &request))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    // The status is a header (trailers-only answer) or in the trailers frame.
    let status = text.split("grpc-status:").skip(1).find_map(|rest| {
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    (head, status)
}

async fn count_approvals(d: &Deployment) -> usize {
    let mut a = d.a().await;
    a.list_approvals(v1::ListApprovalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .approvals
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_calls_are_refused_by_default_and_change_nothing() {
    let d = Deployment::start(Store::Memory).await;
    let port = d.replicas[0].port;
    let host = format!("127.0.0.1:{port}");

    let preflight = tokio::task::spawn_blocking(move || {
        http(
            port,
            b"OPTIONS /approval.v1.ApprovalService/CreateApproval HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n\
              Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    let preflight = String::from_utf8_lossy(&preflight).to_lowercase();
    assert!(
        !preflight.contains("access-control-allow-origin"),
        "{preflight}"
    );

    // Even sent without a preflight (as curl or a forged form would), the
    // call is refused before it runs.
    let (head, status) = create_from_a_page(port, &host, Some("https://evil.example")).await;
    assert_eq!(status, Some(7), "PERMISSION_DENIED: {head}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert_eq!(count_approvals(&d).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_served_from_approvalds_own_loopback_address_may_call() {
    let d = Deployment::start(Store::Memory).await;
    let port = d.replicas[0].port;
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let origin = format!("http://{host}");
        let (head, status) = create_from_a_page(port, &host, Some(&origin)).await;
        assert_eq!(status, Some(0), "{host}: {head}");
    }
    // Programs send no Origin: not concerned, whatever the Host.
    let (head, status) = create_from_a_page(port, "approvald.internal:443", None).await;
    assert_eq!(status, Some(0), "{head}");
    assert_eq!(count_approvals(&d).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_off_browser_calls_to_a_non_loopback_host_are_refused() {
    // DNS rebinding: evil.example resolves to 127.0.0.1; its page is "same
    // origin" with the Host it addresses.
    let d = Deployment::start(Store::Memory).await;
    let port = d.replicas[0].port;
    let host = format!("evil.example:{port}");
    let (head, status) = create_from_a_page(port, &host, Some(&format!("http://{host}"))).await;
    assert_eq!(status, Some(7), "PERMISSION_DENIED: {head}");
    assert_eq!(count_approvals(&d).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_cors_origin_is_refused_at_start_while_auth_is_off() {
    let mut config = approvald::Config::for_tests();
    config.cors_origins = vec!["*".into()];
    let refused = approvald::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("--cors-origins"), "{refused}");
}
