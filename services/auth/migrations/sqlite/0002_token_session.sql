-- Codes and access tokens name the browser session they were issued from: a token is good only
-- while that session lives (logout, a password or TOTP change and disabling the user end it).
ALTER TABLE auth_code ADD COLUMN session_hash TEXT;
ALTER TABLE auth_token ADD COLUMN session_hash TEXT;
