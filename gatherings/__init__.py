"""Scheduled gatherings: moderators plan sessions of a guild or a region, members RSVP,
are reminded, and follow them in their calendars."""
