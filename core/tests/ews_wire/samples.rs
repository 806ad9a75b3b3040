//! EWS answers shaped like the examples in Microsoft's EWS reference (operation pages'
//! "successful response" and "error response" samples), with exgate's own IDs and values.
//! Each one is checked against the EWS schema in `responses.rs`.

pub(crate) const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// Wraps a body element in an envelope with a `ServerVersionInfo` header, as Exchange 2016
/// answers.
pub(crate) fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header>
    <h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2016_10_10" xmlns:h="{T}" xmlns="{T}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"/>
  </s:Header>
  <s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
{body}
  </s:Body>
</s:Envelope>"#
    )
}

const NS: &str = r#"xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#;

pub(crate) fn find_item() -> String {
    envelope(&format!(
        r#"<m:FindItemResponse {NS}>
      <m:ResponseMessages>
        <m:FindItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:RootFolder IndexedPagingOffset="2" TotalItemsInView="5" IncludesLastItemInRange="false">
            <t:Items>
              <t:Message>
                <t:ItemId Id="AAMkADk0N2E1Msg1AAA=" ChangeKey="CQAAABYAAAA1"/>
                <t:ParentFolderId Id="AQMkADk0InboxAAA=" ChangeKey="AQAAAA=="/>
                <t:Subject>Quarterly report &amp; &lt;figures&gt;</t:Subject>
                <t:DateTimeReceived>2026-11-23T09:14:05Z</t:DateTimeReceived>
                <t:Categories><t:String>Finance</t:String><t:String>Q4</t:String></t:Categories>
                <t:Importance>High</t:Importance>
                <t:HasAttachments>true</t:HasAttachments>
                <t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>
                <t:Preview>Please find the figures attached</t:Preview>
                <t:From><t:Mailbox><t:Name>Ana Ruiz</t:Name><t:EmailAddress>ana@contoso.com</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox></t:From>
                <t:InternetMessageId>&lt;a1@contoso.com&gt;</t:InternetMessageId>
                <t:IsRead>false</t:IsRead>
              </t:Message>
              <t:Message>
                <t:ItemId Id="AAMkADk0N2E1Msg2AAA=" ChangeKey="CQAAABYAAAA2"/>
                <t:Subject></t:Subject>
                <t:DateTimeReceived>2026-11-22T18:00:00+01:00</t:DateTimeReceived>
                <t:Importance>Normal</t:Importance>
                <t:HasAttachments>false</t:HasAttachments>
                <t:IsRead>true</t:IsRead>
              </t:Message>
            </t:Items>
          </m:RootFolder>
        </m:FindItemResponseMessage>
      </m:ResponseMessages>
    </m:FindItemResponse>"#
    ))
}

/// MIME of the full message, base64 (`Subject: Hi`).
pub(crate) const MIME_B64: &str = "U3ViamVjdDogSGkNCg0KSGVsbG8NCg==";

pub(crate) fn get_item() -> String {
    envelope(&format!(
        r#"<m:GetItemResponse {NS}>
      <m:ResponseMessages>
        <m:GetItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Message>
              <t:MimeContent CharacterSet="UTF-8">{MIME_B64}</t:MimeContent>
              <t:ItemId Id="AAMkADk0N2E1Msg1AAA=" ChangeKey="CQAAABYAAAA1"/>
              <t:Subject>Quarterly report</t:Subject>
              <t:Body BodyType="HTML">&lt;html&gt;&lt;body&gt;&lt;p&gt;Figures &amp;amp; notes&lt;/p&gt;&lt;/body&gt;&lt;/html&gt;</t:Body>
              <t:Attachments>
                <t:FileAttachment>
                  <t:AttachmentId Id="AAMkADk0Att1AAA="/>
                  <t:Name>q4.xlsx</t:Name>
                  <t:ContentType>application/vnd.openxmlformats-officedocument.spreadsheetml.sheet</t:ContentType>
                  <t:Size>18230</t:Size>
                  <t:IsInline>false</t:IsInline>
                </t:FileAttachment>
              </t:Attachments>
              <t:DateTimeReceived>2026-11-23T09:14:05Z</t:DateTimeReceived>
              <t:Importance>Normal</t:Importance>
              <t:DateTimeSent>2026-11-23T09:13:58Z</t:DateTimeSent>
              <t:HasAttachments>true</t:HasAttachments>
              <t:ConversationId Id="AAQkADk0Conv1AAA="/>
              <t:ToRecipients>
                <t:Mailbox><t:Name>Ben Okafor</t:Name><t:EmailAddress>ben@contoso.com</t:EmailAddress></t:Mailbox>
                <t:Mailbox><t:EmailAddress>team@contoso.com</t:EmailAddress></t:Mailbox>
              </t:ToRecipients>
              <t:CcRecipients><t:Mailbox><t:EmailAddress>cfo@contoso.com</t:EmailAddress></t:Mailbox></t:CcRecipients>
              <t:From><t:Mailbox><t:Name>Ana Ruiz</t:Name><t:EmailAddress>ana@contoso.com</t:EmailAddress></t:Mailbox></t:From>
              <t:InternetMessageId>&lt;a1@contoso.com&gt;</t:InternetMessageId>
              <t:IsRead>true</t:IsRead>
              <t:ReplyTo><t:Mailbox><t:EmailAddress>reports@contoso.com</t:EmailAddress></t:Mailbox></t:ReplyTo>
            </t:Message>
          </m:Items>
        </m:GetItemResponseMessage>
        <m:GetItemResponseMessage ResponseClass="Error">
          <m:MessageText>The specified object was not found in the store., The process failed to get the correct properties.</m:MessageText>
          <m:ResponseCode>ErrorItemNotFound</m:ResponseCode>
          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
          <m:Items/>
        </m:GetItemResponseMessage>
      </m:ResponseMessages>
    </m:GetItemResponse>"#
    ))
}

pub(crate) fn get_calendar_item() -> String {
    envelope(&format!(
        r#"<m:GetItemResponse {NS}>
      <m:ResponseMessages>
        <m:GetItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:CalendarItem>
              <t:ItemId Id="AAMkADk0Cal1AAA=" ChangeKey="DwAAABYAAAA1"/>
              <t:Subject>Team sync</t:Subject>
              <t:Sensitivity>Private</t:Sensitivity>
              <t:Preview>Agenda: status</t:Preview>
              <t:Start>2026-11-02T09:00:00Z</t:Start>
              <t:End>2026-11-02T09:30:00Z</t:End>
              <t:IsAllDayEvent>false</t:IsAllDayEvent>
              <t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>
              <t:Location>Room 4</t:Location>
              <t:IsCancelled>false</t:IsCancelled>
              <t:CalendarItemType>RecurringMaster</t:CalendarItemType>
              <t:Organizer><t:Mailbox><t:Name>Ana Ruiz</t:Name><t:EmailAddress>ana@contoso.com</t:EmailAddress></t:Mailbox></t:Organizer>
              <t:RequiredAttendees>
                <t:Attendee><t:Mailbox><t:EmailAddress>ben@contoso.com</t:EmailAddress></t:Mailbox><t:ResponseType>Accept</t:ResponseType></t:Attendee>
              </t:RequiredAttendees>
              <t:OptionalAttendees>
                <t:Attendee><t:Mailbox><t:EmailAddress>eve@contoso.com</t:EmailAddress></t:Mailbox><t:ResponseType>NoResponseReceived</t:ResponseType></t:Attendee>
              </t:OptionalAttendees>
              <t:Recurrence>
                <t:WeeklyRecurrence>
                  <t:Interval>1</t:Interval>
                  <t:DaysOfWeek>Monday Thursday</t:DaysOfWeek>
                  <t:FirstDayOfWeek>Monday</t:FirstDayOfWeek>
                </t:WeeklyRecurrence>
                <t:NumberedRecurrence>
                  <t:StartDate>2026-11-02Z</t:StartDate>
                  <t:NumberOfOccurrences>10</t:NumberOfOccurrences>
                </t:NumberedRecurrence>
              </t:Recurrence>
              <t:StartTimeZone Id="W. Europe Standard Time" Name="(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"/>
              <t:JoinOnlineMeetingUrl>https://meet.contoso.com/ana/sync</t:JoinOnlineMeetingUrl>
            </t:CalendarItem>
          </m:Items>
        </m:GetItemResponseMessage>
      </m:ResponseMessages>
    </m:GetItemResponse>"#
    ))
}

pub(crate) fn find_calendar_items() -> String {
    envelope(&format!(
        r#"<m:FindItemResponse {NS}>
      <m:ResponseMessages>
        <m:FindItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:RootFolder TotalItemsInView="2" IncludesLastItemInRange="true">
            <t:Items>
              <t:CalendarItem>
                <t:ItemId Id="AAMkADk0Occ1AAA=" ChangeKey="DwAAAB1"/>
                <t:Subject>Team sync</t:Subject>
                <t:Start>2026-11-05T09:00:00Z</t:Start>
                <t:End>2026-11-05T09:30:00Z</t:End>
                <t:IsAllDayEvent>false</t:IsAllDayEvent>
                <t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus>
                <t:CalendarItemType>Occurrence</t:CalendarItemType>
              </t:CalendarItem>
              <t:CalendarItem>
                <t:ItemId Id="AAMkADk0Hol1AAA=" ChangeKey="DwAAAB2"/>
                <t:Subject>Holiday</t:Subject>
                <t:Start>2026-11-06T00:00:00+01:00</t:Start>
                <t:End>2026-11-07T00:00:00+01:00</t:End>
                <t:IsAllDayEvent>true</t:IsAllDayEvent>
                <t:LegacyFreeBusyStatus>OOF</t:LegacyFreeBusyStatus>
                <t:CalendarItemType>Single</t:CalendarItemType>
              </t:CalendarItem>
            </t:Items>
          </m:RootFolder>
        </m:FindItemResponseMessage>
      </m:ResponseMessages>
    </m:FindItemResponse>"#
    ))
}

pub(crate) fn find_folder() -> String {
    envelope(&format!(
        r#"<m:FindFolderResponse {NS}>
      <m:ResponseMessages>
        <m:FindFolderResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:RootFolder TotalItemsInView="3" IncludesLastItemInRange="true">
            <t:Folders>
              <t:Folder>
                <t:FolderId Id="AQMkADk0InboxAAA=" ChangeKey="AQAAABYAAAA1"/>
                <t:ParentFolderId Id="AQMkADk0RootAAA=" ChangeKey="AQAAAA=="/>
                <t:FolderClass>IPF.Note</t:FolderClass>
                <t:DisplayName>Inbox</t:DisplayName>
                <t:TotalCount>120</t:TotalCount>
                <t:ChildFolderCount>1</t:ChildFolderCount>
                <t:UnreadCount>7</t:UnreadCount>
              </t:Folder>
              <t:CalendarFolder>
                <t:FolderId Id="AQMkADk0CalAAA=" ChangeKey="AgAAABYAAAA1"/>
                <t:FolderClass>IPF.Appointment</t:FolderClass>
                <t:DisplayName>Calendar</t:DisplayName>
                <t:TotalCount>40</t:TotalCount>
                <t:ChildFolderCount>0</t:ChildFolderCount>
              </t:CalendarFolder>
              <t:ContactsFolder>
                <t:FolderId Id="AQMkADk0ConAAA=" ChangeKey="AwAAABYAAAA1"/>
                <t:DisplayName>Contacts</t:DisplayName>
                <t:TotalCount>12</t:TotalCount>
                <t:ChildFolderCount>0</t:ChildFolderCount>
              </t:ContactsFolder>
            </t:Folders>
          </m:RootFolder>
        </m:FindFolderResponseMessage>
      </m:ResponseMessages>
    </m:FindFolderResponse>"#
    ))
}

pub(crate) fn get_folder() -> String {
    envelope(&format!(
        r#"<m:GetFolderResponse {NS}>
      <m:ResponseMessages>
        <m:GetFolderResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Folders>
            <t:Folder>
              <t:FolderId Id="AQMkADk0InboxAAA=" ChangeKey="AQAAABYAAAA1"/>
              <t:DisplayName>Inbox</t:DisplayName>
              <t:TotalCount>120</t:TotalCount>
              <t:ChildFolderCount>1</t:ChildFolderCount>
              <t:UnreadCount>7</t:UnreadCount>
            </t:Folder>
          </m:Folders>
        </m:GetFolderResponseMessage>
        <m:GetFolderResponseMessage ResponseClass="Error">
          <m:MessageText>The specified folder could not be found in the store.</m:MessageText>
          <m:ResponseCode>ErrorFolderNotFound</m:ResponseCode>
          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
        </m:GetFolderResponseMessage>
      </m:ResponseMessages>
    </m:GetFolderResponse>"#
    ))
}

pub(crate) fn sync_folder_items() -> String {
    envelope(&format!(
        r#"<m:SyncFolderItemsResponse {NS}>
      <m:ResponseMessages>
        <m:SyncFolderItemsResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733ujudTif33/8/XGZkAWz2zkrayZ4hgKrIHz9+fB8/In7x</m:SyncState>
          <m:IncludesLastItemInRange>false</m:IncludesLastItemInRange>
          <m:Changes>
            <t:Create>
              <t:Message>
                <t:ItemId Id="AAMkADk0New1AAA=" ChangeKey="CQAAAB1"/>
                <t:Subject>New one</t:Subject>
                <t:DateTimeReceived>2026-11-24T07:00:00Z</t:DateTimeReceived>
                <t:IsRead>false</t:IsRead>
              </t:Message>
            </t:Create>
            <t:Update>
              <t:Message>
                <t:ItemId Id="AAMkADk0Upd1AAA=" ChangeKey="CQAAAB2"/>
                <t:Subject>Changed</t:Subject>
                <t:IsRead>true</t:IsRead>
              </t:Message>
            </t:Update>
            <t:Delete><t:ItemId Id="AAMkADk0Del1AAA=" ChangeKey="CQAAAB3"/></t:Delete>
            <t:ReadFlagChange><t:ItemId Id="AAMkADk0Flg1AAA=" ChangeKey="CQAAAB4"/><t:IsRead>true</t:IsRead></t:ReadFlagChange>
          </m:Changes>
        </m:SyncFolderItemsResponseMessage>
      </m:ResponseMessages>
    </m:SyncFolderItemsResponse>"#
    ))
}

pub(crate) fn sync_folder_hierarchy() -> String {
    envelope(&format!(
        r#"<m:SyncFolderHierarchyResponse {NS}>
      <m:ResponseMessages>
        <m:SyncFolderHierarchyResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi</m:SyncState>
          <m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange>
          <m:Changes>
            <t:Create>
              <t:Folder>
                <t:FolderId Id="AQMkADk0ProjAAA=" ChangeKey="AQAAAB1"/>
                <t:ParentFolderId Id="AQMkADk0InboxAAA=" ChangeKey="AQAAAA=="/>
                <t:DisplayName>Projects</t:DisplayName>
                <t:TotalCount>0</t:TotalCount>
                <t:ChildFolderCount>0</t:ChildFolderCount>
                <t:UnreadCount>0</t:UnreadCount>
              </t:Folder>
            </t:Create>
            <t:Delete><t:FolderId Id="AQMkADk0OldAAA=" ChangeKey="AQAAAB2"/></t:Delete>
          </m:Changes>
        </m:SyncFolderHierarchyResponseMessage>
      </m:ResponseMessages>
    </m:SyncFolderHierarchyResponse>"#
    ))
}

/// As in Microsoft's GetUserAvailability example: default namespaces, no prefixes.
pub(crate) fn get_user_availability() -> String {
    envelope(&format!(
        r#"<GetUserAvailabilityResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <FreeBusyResponseArray>
        <FreeBusyResponse>
          <ResponseMessage ResponseClass="Success">
            <ResponseCode>NoError</ResponseCode>
          </ResponseMessage>
          <FreeBusyView>
            <FreeBusyViewType xmlns="{T}">DetailedMerged</FreeBusyViewType>
            <MergedFreeBusy xmlns="{T}">0022013</MergedFreeBusy>
            <CalendarEventArray xmlns="{T}">
              <CalendarEvent>
                <StartTime>2026-12-01T09:00:00</StartTime>
                <EndTime>2026-12-01T10:00:00</EndTime>
                <BusyType>Busy</BusyType>
                <CalendarEventDetails>
                  <ID>000000008DCE1F0B</ID>
                  <Subject>Budget review</Subject>
                  <Location>Room 2</Location>
                  <IsMeeting>true</IsMeeting>
                  <IsRecurring>false</IsRecurring>
                  <IsException>false</IsException>
                  <IsReminderSet>true</IsReminderSet>
                  <IsPrivate>false</IsPrivate>
                </CalendarEventDetails>
              </CalendarEvent>
              <CalendarEvent>
                <StartTime>2026-12-01T11:30:00</StartTime>
                <EndTime>2026-12-01T12:00:00</EndTime>
                <BusyType>OOF</BusyType>
              </CalendarEvent>
            </CalendarEventArray>
          </FreeBusyView>
        </FreeBusyResponse>
        <FreeBusyResponse>
          <ResponseMessage ResponseClass="Error">
            <MessageText>Unable to resolve e-mail address nobody@contoso.com to an Active Directory object.</MessageText>
            <ResponseCode>ErrorMailRecipientNotFound</ResponseCode>
            <DescriptiveLinkKey>0</DescriptiveLinkKey>
          </ResponseMessage>
          <FreeBusyView>
            <FreeBusyViewType xmlns="{T}">None</FreeBusyViewType>
          </FreeBusyView>
        </FreeBusyResponse>
      </FreeBusyResponseArray>
    </GetUserAvailabilityResponse>"#
    ))
}

pub(crate) fn resolve_names() -> String {
    envelope(&format!(
        r#"<m:ResolveNamesResponse {NS}>
      <m:ResponseMessages>
        <m:ResolveNamesResponseMessage ResponseClass="Warning">
          <m:MessageText>Multiple results were found.</m:MessageText>
          <m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode>
          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
          <m:ResolutionSet TotalItemsInView="2" IncludesLastItemInRange="true">
            <t:Resolution>
              <t:Mailbox><t:Name>Ana Ruiz</t:Name><t:EmailAddress>ana@contoso.com</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>
              <t:Contact>
                <t:DisplayName>Ana Ruiz</t:DisplayName>
                <t:GivenName>Ana</t:GivenName>
                <t:CompanyName>Contoso</t:CompanyName>
                <t:EmailAddresses><t:Entry Key="EmailAddress1">SMTP:ana@contoso.com</t:Entry></t:EmailAddresses>
                <t:JobTitle>Controller</t:JobTitle>
                <t:Surname>Ruiz</t:Surname>
              </t:Contact>
            </t:Resolution>
            <t:Resolution>
              <t:Mailbox><t:Name>Ana Team</t:Name><t:EmailAddress>ana-team@contoso.com</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>PublicDL</t:MailboxType></t:Mailbox>
            </t:Resolution>
          </m:ResolutionSet>
        </m:ResolveNamesResponseMessage>
      </m:ResponseMessages>
    </m:ResolveNamesResponse>"#
    ))
}

pub(crate) fn get_contacts() -> String {
    envelope(&format!(
        r#"<m:GetItemResponse {NS}>
      <m:ResponseMessages>
        <m:GetItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Contact>
              <t:ItemId Id="AAMkADk0Con1AAA=" ChangeKey="EQAAAB1"/>
              <t:DisplayName>Ben Okafor</t:DisplayName>
              <t:GivenName>Ben</t:GivenName>
              <t:CompanyName>Fabrikam</t:CompanyName>
              <t:EmailAddresses>
                <t:Entry Key="EmailAddress1">ben@fabrikam.com</t:Entry>
                <t:Entry Key="EmailAddress2">ben.okafor@example.org</t:Entry>
              </t:EmailAddresses>
              <t:PhoneNumbers>
                <t:Entry Key="BusinessPhone">+49 30 1234</t:Entry>
                <t:Entry Key="MobilePhone">+49 170 5678</t:Entry>
                <t:Entry Key="HomePhone">+49 30 9999</t:Entry>
              </t:PhoneNumbers>
              <t:JobTitle>Buyer</t:JobTitle>
              <t:Surname>Okafor</t:Surname>
            </t:Contact>
          </m:Items>
        </m:GetItemResponseMessage>
      </m:ResponseMessages>
    </m:GetItemResponse>"#
    ))
}

pub(crate) fn get_attachment() -> String {
    envelope(&format!(
        r#"<m:GetAttachmentResponse {NS}>
      <m:ResponseMessages>
        <m:GetAttachmentResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Attachments>
            <t:FileAttachment>
              <t:AttachmentId Id="AAMkADk0Att1AAA="/>
              <t:Name>notes.txt</t:Name>
              <t:ContentType>text/plain</t:ContentType>
              <t:Content>SGVsbG8sIHdvcmxkIQ==</t:Content>
            </t:FileAttachment>
          </m:Attachments>
        </m:GetAttachmentResponseMessage>
      </m:ResponseMessages>
    </m:GetAttachmentResponse>"#
    ))
}

pub(crate) fn create_item() -> String {
    envelope(&format!(
        r#"<m:CreateItemResponse {NS}>
      <m:ResponseMessages>
        <m:CreateItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Message><t:ItemId Id="AAMkADk0Draft1AAA=" ChangeKey="CQAAABYAAAD1"/></t:Message>
          </m:Items>
        </m:CreateItemResponseMessage>
      </m:ResponseMessages>
    </m:CreateItemResponse>"#
    ))
}

pub(crate) fn move_item() -> String {
    envelope(&format!(
        r#"<m:MoveItemResponse {NS}>
      <m:ResponseMessages>
        <m:MoveItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Message><t:ItemId Id="AAMkADk0Moved1AAA=" ChangeKey="CQAAABYAAAM1"/></t:Message>
          </m:Items>
        </m:MoveItemResponseMessage>
      </m:ResponseMessages>
    </m:MoveItemResponse>"#
    ))
}

pub(crate) fn create_attachment() -> String {
    envelope(&format!(
        r#"<m:CreateAttachmentResponse {NS}>
      <m:ResponseMessages>
        <m:CreateAttachmentResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Attachments>
            <t:FileAttachment>
              <t:AttachmentId Id="AAMkADk0Att9AAA=" RootItemId="AAMkADk0Draft1AAA=" RootItemChangeKey="CQAAABYAAAD2"/>
            </t:FileAttachment>
          </m:Attachments>
        </m:CreateAttachmentResponseMessage>
      </m:ResponseMessages>
    </m:CreateAttachmentResponse>"#
    ))
}

pub(crate) fn send_item() -> String {
    envelope(&format!(
        r#"<m:SendItemResponse {NS}>
      <m:ResponseMessages>
        <m:SendItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
        </m:SendItemResponseMessage>
      </m:ResponseMessages>
    </m:SendItemResponse>"#
    ))
}

/// `ErrorServerBusy` inside a 200 answer, with its back-off hint.
pub(crate) fn delete_item_busy() -> String {
    envelope(&format!(
        r#"<m:DeleteItemResponse {NS}>
      <m:ResponseMessages>
        <m:DeleteItemResponseMessage ResponseClass="Error">
          <m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText>
          <m:ResponseCode>ErrorServerBusy</m:ResponseCode>
          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
          <m:MessageXml>
            <t:Value Name="BackOffMilliseconds">29943</t:Value>
          </m:MessageXml>
        </m:DeleteItemResponseMessage>
      </m:ResponseMessages>
    </m:DeleteItemResponse>"#
    ))
}

/// `ErrorServerBusy` as an HTTP 500 SOAP fault, as Exchange Online sends it.
pub(crate) fn busy_fault() -> String {
    r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Body>
    <s:Fault>
      <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
      <faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
      <detail>
        <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
        <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
        <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <t:Value Name="BackOffMilliseconds">2994</t:Value>
        </t:MessageXml>
      </detail>
    </s:Fault>
  </s:Body>
</s:Envelope>"#
        .to_owned()
}

/// A schema-validation fault (a malformed request), with no EWS detail code of its own.
pub(crate) fn schema_fault() -> String {
    r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Body>
    <s:Fault>
      <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorSchemaValidation</faultcode>
      <faultstring xml:lang="en-US">The request failed schema validation: The 'Traversal' attribute is invalid.</faultstring>
      <detail>
        <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorSchemaValidation</e:ResponseCode>
        <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The request failed schema validation.</e:Message>
        <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <t:LineNumber>2</t:LineNumber>
          <t:LinePosition>630</t:LinePosition>
        </t:MessageXml>
      </detail>
    </s:Fault>
  </s:Body>
</s:Envelope>"#
        .to_owned()
}

/// Every sample, for the schema check and the property test.
pub(crate) fn all() -> Vec<String> {
    vec![
        find_item(),
        get_item(),
        get_calendar_item(),
        find_calendar_items(),
        find_folder(),
        get_folder(),
        sync_folder_items(),
        sync_folder_hierarchy(),
        get_user_availability(),
        resolve_names(),
        get_contacts(),
        get_attachment(),
        create_item(),
        move_item(),
        create_attachment(),
        send_item(),
        delete_item_busy(),
        busy_fault(),
        schema_fault(),
    ]
}
