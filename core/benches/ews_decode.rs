//! How fast EWS answers decode into the neutral types: a `FindItem` page of 1,000 message
//! summaries, and a `GetItem` of 100 whole messages with HTML bodies of a few KB (escaped
//! markup, as Exchange sends it), reported in MB/s.
//! Run with `cargo bench -p exgate-core --bench ews_decode` (or `cargo xtask bench`).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exgate_core::ews::wire::{decode_find_messages, decode_get_messages};

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2016_10_10" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body>"#;
const NS: &str = r#"xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#;

fn summary_fields(out: &mut String, i: usize) {
    let _ = write!(
        out,
        r#"<t:ItemId Id="AAMkADk0N2E1ZmQ4LTlhYjMtNGU2Zi05MWI5LWQ1ZWMyNmRhYzZmMgBGAAAAAADx{i:08}AAA=" ChangeKey="CQAAABYAAABzdXJmYWNlIHRlbnNpb24{i:04}"/><t:ParentFolderId Id="AQMkADk0N2E1ZmQ4LTlhYjMtNGU2Zi05MWI5AC4AAAPxInboxAAA=" ChangeKey="AQAAAA=="/><t:Subject>Re: Quarterly report #{i} &amp; figures for review</t:Subject><t:DateTimeReceived>2026-11-{:02}T09:{:02}:05Z</t:DateTimeReceived><t:Categories><t:String>Finance</t:String></t:Categories><t:Importance>Normal</t:Importance><t:HasAttachments>{}</t:HasAttachments><t:Flag><t:FlagStatus>NotFlagged</t:FlagStatus></t:Flag><t:Preview>Hello team, please find the latest figures attached; the summary is below and the details are in the spreadsheet. Regards, Ana</t:Preview><t:From><t:Mailbox><t:Name>Ana Ruiz</t:Name><t:EmailAddress>ana.ruiz@contoso.com</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox></t:From><t:InternetMessageId>&lt;{i}.msg@contoso.com&gt;</t:InternetMessageId><t:IsRead>{}</t:IsRead>"#,
        1 + i % 28,
        i % 60,
        i.is_multiple_of(3),
        i.is_multiple_of(2),
    );
}

fn find_item(n: usize) -> String {
    let mut out = String::with_capacity(n * 1200);
    out.push_str(HEAD);
    let _ = write!(
        out,
        r#"<m:FindItemResponse {NS}><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder IndexedPagingOffset="{n}" TotalItemsInView="25000" IncludesLastItemInRange="false"><t:Items>"#
    );
    for i in 0..n {
        out.push_str("<t:Message>");
        summary_fields(&mut out, i);
        out.push_str("</t:Message>");
    }
    out.push_str("</t:Items></m:RootFolder></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse></s:Body></s:Envelope>");
    out
}

/// An HTML body of about `kb` KB, escaped as text inside `t:Body`.
fn html_body(kb: usize) -> String {
    let para = "&lt;p style=&quot;margin:0&quot;&gt;The figures for the quarter are in; revenue rose 4% while costs held steady. Details follow in the attached workbook &amp;amp; the notes below.&lt;/p&gt;";
    let mut body = String::from("&lt;html&gt;&lt;body&gt;");
    while body.len() < kb * 1024 {
        body.push_str(para);
    }
    body.push_str("&lt;/body&gt;&lt;/html&gt;");
    body
}

fn get_item(n: usize) -> String {
    let body = html_body(5);
    let mut out = String::with_capacity(n * (body.len() + 2000));
    out.push_str(HEAD);
    let _ = write!(out, r#"<m:GetItemResponse {NS}><m:ResponseMessages>"#);
    for i in 0..n {
        out.push_str(r#"<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message>"#);
        summary_fields(&mut out, i);
        let _ = write!(
            out,
            r#"<t:Body BodyType="HTML">{body}</t:Body><t:Attachments><t:FileAttachment><t:AttachmentId Id="AAMkADk0Att{i:06}AAA="/><t:Name>q4-{i}.xlsx</t:Name><t:ContentType>application/vnd.openxmlformats-officedocument.spreadsheetml.sheet</t:ContentType><t:Size>18230</t:Size><t:IsInline>false</t:IsInline></t:FileAttachment></t:Attachments><t:DateTimeSent>2026-11-23T09:13:58Z</t:DateTimeSent><t:ConversationId Id="AAQkADk0Conv{i:06}AAA="/><t:ToRecipients><t:Mailbox><t:Name>Ben Okafor</t:Name><t:EmailAddress>ben@contoso.com</t:EmailAddress></t:Mailbox><t:Mailbox><t:EmailAddress>team@contoso.com</t:EmailAddress></t:Mailbox></t:ToRecipients><t:CcRecipients><t:Mailbox><t:EmailAddress>cfo@contoso.com</t:EmailAddress></t:Mailbox></t:CcRecipients>"#
        );
        out.push_str("</t:Message></m:Items></m:GetItemResponseMessage>");
    }
    out.push_str("</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>");
    out
}

fn decode(c: &mut Criterion) {
    let find = find_item(1000);
    let get = get_item(100);
    // Both must decode fully, or the numbers mean nothing.
    let page = decode_find_messages(find.as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(page.items.len(), 1000);
    let messages = decode_get_messages(get.as_bytes()).unwrap().into_results();
    assert_eq!(messages.len(), 100);
    assert!(messages.iter().all(|m| {
        m.as_ref()
            .is_ok_and(|m| m.message.body.content.len() > 3000)
    }));

    let mut g = c.benchmark_group("ews_decode");
    g.throughput(Throughput::Bytes(find.len() as u64));
    g.bench_function("find_item_1000_summaries", |b| {
        b.iter(|| decode_find_messages(black_box(find.as_bytes())).unwrap())
    });
    g.throughput(Throughput::Bytes(get.len() as u64));
    g.bench_function("get_item_100_messages", |b| {
        b.iter(|| decode_get_messages(black_box(get.as_bytes())).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
