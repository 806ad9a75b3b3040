//! Contacts over Graph, with sealed paging.

use async_trait::async_trait;
use reqwest::Method;

use super::wire::{self, Collection, WireContact};
use super::{Call, GraphMailbox};
use crate::Error;
use crate::mailbox::{Contact, ContactDraft, Contacts, MailboxError, MailboxRef, Operation, Page};
use crate::pipeline::segment;

/// Page size of contact listings.
const PAGE: u32 = 100;

#[async_trait]
impl Contacts for GraphMailbox {
    async fn contacts(
        &self,
        mailbox: &MailboxRef,
        page: Option<&str>,
    ) -> Result<Page<Contact>, Error> {
        let (call, current) = match page {
            Some(token) => {
                let link = self.unseal(mailbox, "contacts", "", token)?;
                (
                    Call::link(link.clone(), Operation::READ_CONTACTS, mailbox),
                    Some(link),
                )
            }
            None => (
                Call::new(
                    Method::GET,
                    format!("{}/contacts", self.root(mailbox)?),
                    Operation::READ_CONTACTS,
                    mailbox,
                )
                .query("$select", wire::CONTACT_FIELDS)
                .query("$top", PAGE.to_string()),
                None,
            ),
        };
        let page: Collection<WireContact> = self.get_json(call).await?;
        if page.next_link.is_some() && page.next_link == current {
            return Err(super::repeated_link(1));
        }
        Ok(Page {
            items: page.value.into_iter().map(Contact::from).collect(),
            next: page
                .next_link
                .map(|link| self.seal(mailbox, "contacts", "", &link)),
        })
    }

    async fn contact(&self, mailbox: &MailboxRef, id: &str) -> Result<Contact, Error> {
        let target = format!(
            "{}/contacts/{}",
            self.root(mailbox)?,
            segment("contact", id)?
        );
        Ok(self
            .get_json::<WireContact>(
                Call::new(Method::GET, target, Operation::READ_CONTACTS, mailbox)
                    .query("$select", wire::CONTACT_FIELDS),
            )
            .await?
            .into())
    }

    async fn create_contact(
        &self,
        mailbox: &MailboxRef,
        contact: &ContactDraft,
    ) -> Result<Contact, Error> {
        if contact.display_name.is_none()
            && contact.given_name.is_none()
            && contact.emails.is_none()
        {
            return Err(MailboxError::Invalid(
                "a new contact needs at least a name or an email address".into(),
            )
            .into());
        }
        let call = Call::new(
            Method::POST,
            format!("{}/contacts", self.root(mailbox)?),
            Operation::WRITE_CONTACTS,
            mailbox,
        )
        .json(wire::contact_json(contact));
        Ok(self.get_json::<WireContact>(call).await?.into())
    }

    async fn update_contact(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &ContactDraft,
    ) -> Result<Contact, Error> {
        let target = format!(
            "{}/contacts/{}",
            self.root(mailbox)?,
            segment("contact", id)?
        );
        Ok(self
            .get_json::<WireContact>(
                Call::new(Method::PATCH, target, Operation::WRITE_CONTACTS, mailbox)
                    .json(wire::contact_json(change)),
            )
            .await?
            .into())
    }

    async fn delete_contact(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!(
            "{}/contacts/{}",
            self.root(mailbox)?,
            segment("contact", id)?
        );
        self.no_content(Call::new(
            Method::DELETE,
            target,
            Operation::WRITE_CONTACTS,
            mailbox,
        ))
        .await
    }
}
