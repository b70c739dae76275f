//! The authorization-code flow over real HTTP, and the attacks a real IdP must refuse.

mod support;

use base64::Engine;
use support::*;

fn claims_of(id_token: &str) -> serde_json::Value {
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// Log `user` in at the viewer and return (code, verifier).
async fn code_for(p: &Provider, b: &mut Browser, user: &str, secret: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let page =
        login(b, p.issuer(), &authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]), user, secret)
            .await;
    assert!(page.location.as_deref().unwrap().starts_with(VIEWER_CB), "{:?}", page.location);
    (page.location_param("code").unwrap(), verifier)
}

#[tokio::test]
async fn code_flow_with_pkce_password_and_totp_yields_signed_pairwise_id_token() {
    let p = provider().await;
    let secret = clinician(&p, "sato", "F0401").await;
    let mut b = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let page = login(
        &mut b,
        p.issuer(),
        &authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]),
        "sato",
        &secret,
    )
    .await;
    assert_eq!(page.location_param("state").as_deref(), Some("st-123"));
    assert_eq!(page.location_param("iss").as_deref(), Some(p.issuer()));
    let code = page.location_param("code").unwrap();
    let (status, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    let id = claims_of(tok["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], p.issuer());
    assert_eq!(id["aud"], "viewer");
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["facility"], "F0401");
    assert_eq!(id["roles"], serde_json::json!(["physician"]));
    assert_eq!(id["name"], "Dr. sato");
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
    let user = p.server.directory().user_by_username("sato").await.unwrap().unwrap();
    let sub = id["sub"].as_str().unwrap();
    assert_ne!(sub, user.id, "the viewer must not see the internal user id");
    assert!(!sub.contains("sato"));
    // The ID token verifies against the published JWKS.
    let jwks: serde_json::Value =
        reqwest::get(format!("{}/jwks.json", p.issuer())).await.unwrap().json().await.unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    let t = tok["id_token"].as_str().unwrap();
    let (input, sig) = t.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
    key.verify_strict(input.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig.try_into().unwrap()))
        .unwrap();
    // Userinfo answers with the same pairwise subject.
    let (s, info) = userinfo(&p, tok["access_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["sub"], sub);
    assert_eq!(info["facility"], "F0401");
    // Cookies: HttpOnly, SameSite=Lax, not Secure over plain http.
    assert!(!b.set_cookies.is_empty());
    for c in &b.set_cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    }
    // With a live session the next authorization needs no login (single sign-on).
    let (_, challenge2) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge2, &[])).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location_param("code").is_some());
}

#[tokio::test]
async fn pairwise_subjects_differ_between_sectors_and_are_stable_within_one() {
    let p = provider().await;
    let secret = clinician(&p, "suzuki", "F0402").await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&p, &mut b, "suzuki", &secret).await;
    let (_, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    let viewer_sub = claims_of(tok["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
    // Same browser session, second relying service (public client, sector "audit").
    let (v2, c2) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "audit-ui", AUDIT_CB, &c2, &[])).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let r = reqwest::Client::new()
        .post(format!("{}/token", p.issuer()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &page.location_param("code").unwrap()),
            ("redirect_uri", AUDIT_CB),
            ("code_verifier", &v2),
            ("client_id", "audit-ui"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok2: serde_json::Value = r.json().await.unwrap();
    let audit_sub = claims_of(tok2["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
    assert_ne!(viewer_sub, audit_sub, "two services must not be able to correlate the user by sub");
    // The viewer sees the same sub again on the next login.
    let (v3, c3) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB2, &c3, &[])).await;
    let (s, tok3) = exchange(&p, &page.location_param("code").unwrap(), VIEWER_CB2, &v3).await;
    assert_eq!(s, 200, "{tok3}");
    assert_eq!(claims_of(tok3["id_token"].as_str().unwrap())["sub"].as_str().unwrap(), viewer_sub);
}

#[tokio::test]
async fn pkce_is_required_and_a_wrong_verifier_is_refused() {
    let p = provider().await;
    let secret = clinician(&p, "takahashi", "F0401").await;
    let mut b = Browser::new();
    // Missing PKCE and the plain method are refused at the authorization endpoint.
    let mut u = url::Url::parse(&format!("{}/authorize", p.issuer())).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "viewer")
        .append_pair("redirect_uri", VIEWER_CB)
        .append_pair("scope", "openid")
        .append_pair("state", "s1");
    let page = b.get(u.as_str()).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location_param("error").as_deref(), Some("invalid_request"));
    assert_eq!(page.location_param("state").as_deref(), Some("s1"));
    assert!(page.location_param("code").is_none());
    let (v, _) = pkce_pair();
    let plain = format!("{}&code_challenge={v}&code_challenge_method=plain", u.as_str());
    let page = b.get(&plain).await;
    assert_eq!(page.location_param("error").as_deref(), Some("invalid_request"));
    assert!(page.location_param("error_description").unwrap().contains("plain"));
    // A code obtained with S256 cannot be redeemed with another verifier.
    let (code, verifier) = code_for(&p, &mut b, "takahashi", &secret).await;
    let (other, _) = pkce_pair();
    let (s, body) = exchange(&p, &code, VIEWER_CB, &other).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("code_verifier"));
    let (s, body) = exchange(&p, &code, VIEWER_CB, "").await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    // The rightful client still can.
    let (s, body) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn redirect_uri_tampering_is_refused_without_redirecting() {
    let p = provider().await;
    let secret = clinician(&p, "ito", "F0403").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    for evil in [
        "http://attacker.invalid/callback",
        "http://127.0.0.1:9/viewer/callback/../../evil",
        "http://127.0.0.1:9/viewer/callback?next=http://attacker.invalid",
        "http://127.0.0.1:9/viewer/callbackx",
        "https://127.0.0.1:9/viewer/callback",
        "http://127.0.0.1:9/viewer/callback#frag",
    ] {
        let page = b.get(&authorize_url(p.issuer(), "viewer", evil, &challenge, &[])).await;
        assert_eq!(page.status, 400, "{evil}: {}", page.body);
        assert!(page.location.is_none(), "{evil} must not be redirected to");
        assert!(page.body.contains("redirect_uri is not registered"), "{}", page.body);
    }
    // An unknown client is refused the same way.
    let page = b.get(&authorize_url(p.issuer(), "nobody", VIEWER_CB, &challenge, &[])).await;
    assert_eq!((page.status, page.location.is_none()), (400, true));
    // A code issued for one registered URI cannot be redeemed with another (RFC 6749 §4.1.3).
    let (code, verifier) = code_for(&p, &mut b, "ito", &secret).await;
    let (s, body) = exchange(&p, &code, VIEWER_CB2, &verifier).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
    // Nor by another client, even with the right verifier.
    let r = reqwest::Client::new()
        .post(format!("{}/token", p.issuer()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", VIEWER_CB),
            ("code_verifier", verifier.as_str()),
            ("client_id", "audit-ui"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // And a wrong client secret is invalid_client.
    let r = reqwest::Client::new()
        .post(format!("{}/token", p.issuer()))
        .basic_auth("viewer", Some("not-the-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", VIEWER_CB),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn code_replay_is_refused_and_revokes_the_tokens_issued_from_it() {
    let p = provider().await;
    let secret = clinician(&p, "watanabe", "F0401").await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&p, &mut b, "watanabe", &secret).await;
    let (s, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(s, 200);
    let at = tok["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&p, &at).await.0, 200);
    let (s, body) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("already used"));
    let (s, _) = userinfo(&p, &at).await;
    assert_eq!(s, 401, "the token issued from the replayed code must be revoked");
}

#[tokio::test]
async fn expired_and_reused_totp_codes_are_refused() {
    let p = provider().await;
    let secret = clinician(&p, "kobayashi", "F0401").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf = page.csrf();
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "kobayashi"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 200);
    let now = jiff::Timestamp::now().as_second() as u64;
    // A code from three steps (90 s) ago is outside the one-step skew.
    let old = kizuna_auth::totp::code_at(&secret, now - 90).unwrap();
    let current = kizuna_auth::totp::code_now(&secret).unwrap();
    if old != current {
        let page = b.post(&format!("{}/login/totp", p.issuer()), &[("csrf", &csrf), ("code", &old)]).await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("Wrong or expired code"));
        assert!(page.location.is_none());
    }
    let page = b.post(&format!("{}/login/totp", p.issuer()), &[("csrf", &csrf), ("code", &current)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    // The same code cannot log in a second time (RFC 6238 §5.2), even from a fresh browser.
    let mut b2 = Browser::new();
    let page = b2.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf2 = page.csrf();
    b2.post(
        &format!("{}/login", p.issuer()),
        &[("csrf", &csrf2), ("username", "kobayashi"), ("password", PASSWORD)],
    )
    .await;
    let page = b2.post(&format!("{}/login/totp", p.issuer()), &[("csrf", &csrf2), ("code", &current)]).await;
    assert_eq!(page.status, 401, "a used TOTP code must not be accepted again");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_unlocked() {
    let p = provider().await;
    let secret = clinician(&p, "yamamoto", "F0401").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf = page.csrf();
    for i in 0..5 {
        let page = b
            .post(
                &format!("{}/login", p.issuer()),
                &[("csrf", &csrf), ("username", "yamamoto"), ("password", &format!("wrong password {i}"))],
            )
            .await;
        assert_eq!(page.status, 401);
    }
    // Now even the right password is refused, with the same message as a wrong one.
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "yamamoto"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains(kizuna_auth::api::login::REFUSED));
    let u = p.server.directory().user_by_username("yamamoto").await.unwrap().unwrap();
    assert!(u.locked_until > jiff::Timestamp::now().as_second() + 800);
    // An unknown user gets the same answer (no username enumeration).
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "nobody"), ("password", PASSWORD)],
        )
        .await;
    assert!(page.body.contains(kizuna_auth::api::login::REFUSED));
    p.server.directory().unlock("yamamoto").await.unwrap();
    let page = login(
        &mut b,
        p.issuer(),
        &authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]),
        "yamamoto",
        &secret,
    )
    .await;
    assert!(page.location_param("code").is_some());
}

#[tokio::test]
async fn wrong_totp_codes_also_lock_the_account() {
    let p = provider_with(|c| c.lockout_threshold = 3).await;
    let _secret = clinician(&p, "nakamura", "F0401").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf = page.csrf();
    b.post(
        &format!("{}/login", p.issuer()),
        &[("csrf", &csrf), ("username", "nakamura"), ("password", PASSWORD)],
    )
    .await;
    for _ in 0..2 {
        let page =
            b.post(&format!("{}/login/totp", p.issuer()), &[("csrf", &csrf), ("code", "000000")]).await;
        assert_eq!(page.status, 401);
        assert!(page.body.contains("Wrong or expired code"));
    }
    let page = b.post(&format!("{}/login/totp", p.issuer()), &[("csrf", &csrf), ("code", "000000")]).await;
    assert!(page.body.contains(kizuna_auth::api::login::REFUSED), "third failure locks: {}", page.body);
    let u = p.server.directory().user_by_username("nakamura").await.unwrap().unwrap();
    assert!(u.locked_until > 0);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_flow_cookie_are_refused() {
    let p = provider().await;
    clinician(&p, "kato", "F0401").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", "forged"), ("username", "kato"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 403);
    // A cross-site form post carries no flow cookie (SameSite=Lax): refused too.
    let mut attacker = Browser::new();
    let page = attacker
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", "x"), ("username", "kato"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 400);
}

#[tokio::test]
async fn first_login_enrolls_totp_and_later_logins_require_it() {
    let p = provider().await;
    p.server
        .directory()
        .add_user(&kizuna_auth::NewUser {
            username: "kimura".into(),
            display_name: "Nurse Kimura".into(),
            facility: "F0404".into(),
            roles: vec![kizuna_auth::Role::Nurse],
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf = page.csrf();
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "kimura"), ("password", PASSWORD)],
        )
        .await;
    assert!(page.body.contains(r#"action="/login/enroll""#), "{}", page.body);
    let i = page.body.find(r#"id="totp-secret">"#).unwrap() + r#"id="totp-secret">"#.len();
    let secret = page.body[i..i + page.body[i..].find('<').unwrap()].to_string();
    assert!(page.body.contains("otpauth://totp/"));
    let page = b.post(&format!("{}/login/enroll", p.issuer()), &[("csrf", &csrf), ("code", "123456")]).await;
    assert_eq!(page.status, 401);
    let code = kizuna_auth::totp::code_now(&secret).unwrap();
    let page = b.post(&format!("{}/login/enroll", p.issuer()), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let (s, tok) = exchange(&p, &page.location_param("code").unwrap(), VIEWER_CB, &verifier).await;
    assert_eq!(s, 200);
    assert_eq!(claims_of(tok["id_token"].as_str().unwrap())["roles"], serde_json::json!(["nurse"]));
    assert!(p.server.directory().user_by_username("kimura").await.unwrap().unwrap().totp_enrolled);
}

#[tokio::test]
async fn logout_ends_the_session_and_returns_to_a_registered_uri() {
    let p = provider().await;
    let secret = clinician(&p, "saito", "F0401").await;
    let mut b = Browser::new();
    code_for(&p, &mut b, "saito", &secret).await;
    // Without an ID token of this user the provider asks first.
    let mut u = url::Url::parse(&format!("{}/logout", p.issuer())).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", "viewer")
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:9/viewer/bye")
        .append_pair("state", "bye1");
    let page = b.get(u.as_str()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"action="/logout""#));
    let csrf = page.csrf();
    let page = b
        .post(
            &format!("{}/logout", p.issuer()),
            &[
                ("csrf", "wrong"),
                ("client_id", "viewer"),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/viewer/bye"),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "logout needs the CSRF token");
    let page = b
        .post(
            &format!("{}/logout", p.issuer()),
            &[
                ("csrf", &csrf),
                ("client_id", "viewer"),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/viewer/bye"),
                ("state", "bye1"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("http://127.0.0.1:9/viewer/bye?state=bye1"));
    // The session is gone: authorization shows the login form again; prompt=none says so.
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"action="/login""#));
    let page =
        b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[("prompt", "none")])).await;
    assert_eq!(page.location_param("error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn logout_with_an_id_token_hint_of_the_session_user_ends_the_session_at_once() {
    let p = provider().await;
    let secret = clinician(&p, "ogawa", "F0401").await;
    let other_secret = clinician(&p, "mori", "F0401").await;
    // Another user's ID token (e.g. from an earlier login on this PC) gets the question, not a logout.
    let mut other = Browser::new();
    let (code, verifier) = code_for(&p, &mut other, "mori", &other_secret).await;
    let (_, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    let other_hint = tok["id_token"].as_str().unwrap().to_string();
    let mut b = Browser::new();
    let (code, verifier) = code_for(&p, &mut b, "ogawa", &secret).await;
    let (_, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    let hint = tok["id_token"].as_str().unwrap();
    let logout_url = |hint: &str| {
        let mut u = url::Url::parse(&format!("{}/logout", p.issuer())).unwrap();
        u.query_pairs_mut()
            .append_pair("id_token_hint", hint)
            .append_pair("post_logout_redirect_uri", "http://127.0.0.1:9/viewer/bye");
        u.to_string()
    };
    let page = b.get(&logout_url(&other_hint)).await;
    assert_eq!(page.status, 200, "another user's hint: confirmation");
    assert!(page.body.contains(r#"action="/logout""#));
    let page = b.get(&logout_url(hint)).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("http://127.0.0.1:9/viewer/bye"));
    // The next authorization asks for the password again.
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    assert_eq!(page.status, 200, "{:?}", page.location);
    assert!(page.body.contains(r#"action="/login""#));
}

#[tokio::test]
async fn secure_cookies_behind_tls_carry_secure_and_the_host_prefix() {
    let p = provider_with(|c| c.secure_cookies = Some(true)).await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    assert_eq!(page.status, 200);
    let c = &b.set_cookies[0];
    assert!(c.starts_with("__Host-kizuna_auth_flow="), "{c}");
    assert!(
        c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"),
        "{c}"
    );
}

#[tokio::test]
async fn discovery_advertises_only_what_is_implemented() {
    let p = provider().await;
    let d: serde_json::Value = reqwest::get(format!("{}/.well-known/openid-configuration", p.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], p.issuer());
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["subject_types_supported"], serde_json::json!(["pairwise"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["EdDSA"]));
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
}

#[tokio::test]
async fn the_listener_bound_to_a_device_serves_there_and_a_missing_device_is_named() {
    // On the centre's router the provider listens in the reference segment's VRF; `lo` stands in.
    let p = provider_with(|c| c.http_bind_interface = "lo".into()).await;
    let discovery: serde_json::Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", p.issuer()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(discovery["issuer"], p.issuer());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kizuna_auth::AuthConfig::local(dir.path()).unwrap();
    cfg.http_bind_interface = "kzv-nonesuch".into();
    let e = kizuna_auth::Server::start(cfg).await.err().expect("no such device").to_string();
    assert!(e.contains("kzv-nonesuch"), "{e}");
}

#[tokio::test]
async fn access_tokens_live_with_their_session_and_die_when_it_ends() {
    // Relying parties re-check their sessions at userinfo: the token must last as long as the
    // provider session (here longer than a 1 s token lifetime) and no longer.
    let p = provider_with(|c| c.token_lifetime_secs = 1).await;
    let sato = clinician(&p, "sato", "F0401").await;
    let tanaka = clinician(&p, "tanaka", "F0401").await;
    let mut tokens = Vec::new();
    for (user, secret) in [("sato", &sato), ("tanaka", &tanaka)] {
        let mut b = Browser::new();
        let (code, verifier) = code_for(&p, &mut b, user, secret).await;
        let (s, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
        assert_eq!(s, 200, "{tok}");
        tokens.push(tok["access_token"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for at in &tokens {
        let (s, body) = userinfo(&p, at).await;
        assert_eq!(s, 200, "the session lives, so does its token: {body}");
    }
    // A password reset ends sato's sessions, disabling ends tanaka's: their tokens go with them.
    p.server.directory().set_password("sato", "another long password").await.unwrap();
    assert_eq!(userinfo(&p, &tokens[0]).await.0, 401, "password reset");
    assert_eq!(userinfo(&p, &tokens[1]).await.0, 200);
    p.server.directory().set_disabled("tanaka", true).await.unwrap();
    p.server.directory().set_disabled("tanaka", false).await.unwrap();
    assert_eq!(userinfo(&p, &tokens[1]).await.0, 401, "disabling ended the session for good");
}
