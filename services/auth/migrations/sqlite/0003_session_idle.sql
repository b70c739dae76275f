-- The provider's idle timeout (`session_idle_secs`): when a browser session was last used (a code
-- issued from it, or userinfo answered for a token of it). NULL (sessions made before this
-- migration) counts as the session's auth_time.
ALTER TABLE auth_session ADD COLUMN last_used_at BIGINT;
