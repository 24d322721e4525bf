-- The monitor's batch on PostgreSQL. Each statement takes all its rows as one JSON
-- parameter, so its text (and plan) is the same for 1 drop or 5,000: one round trip, no
-- statement splitting, nothing for the driver to re-parse. The columns' own types and
-- lengths still apply on assignment.

-- existing_reviews --
-- The reviews of a batch's keys, locked. :rows = [{project, drop_number}].
-- LATERAL: one unique-index probe per key, whatever the table's size or statistics (a
-- hash join would read every review of every project on each batch).
SELECT t.project, t.drop_number, t.id, t.whatsapp_message_date, t.last_message_date,
       t.user_name, t.submitted_by, t.incomplete, t.feedback_sent, t.comment
FROM json_to_recordset(CAST(:rows AS json)) AS k(project text, drop_number text)
CROSS JOIN LATERAL (
    SELECT * FROM qa_photo_reviews AS r
    WHERE r.project = k.project AND r.drop_number = k.drop_number
    FOR UPDATE
) AS t

-- log_submissions --
-- Log a batch's submissions, once each; returns those that were new to the log.
INSERT INTO drop_submissions
    (chat_jid, message_id, drop_number, project, sender, sender_name, message_time, kind)
SELECT chat_jid, message_id, drop_number, project, sender, sender_name, message_time, kind
FROM json_to_recordset(CAST(:rows AS json)) AS v(
    chat_jid text, message_id text, drop_number text, project text, sender text,
    sender_name text, message_time timestamptz, kind text
)
ON CONFLICT (chat_jid, message_id, drop_number) DO NOTHING
RETURNING chat_jid, message_id, drop_number

-- record_batch --
-- All of a batch's writes in one statement of data-modifying CTEs: the cursors, the
-- submissions log, and the reviews, which are written only if every submission was new
-- to the log (`complete`, :expected of them). With BEGIN, existing_reviews and COMMIT, a
-- batch is four round trips. Returns the submissions logged; when some were logged
-- already (a re-delivered message) no review was written, and write_reviews follows,
-- planned again without them: five.
-- The update and insert are write_reviews' own: change them together.
WITH saved_cursors AS (
    INSERT INTO scan_cursors (chat_jid, last_rowid, anchor, updated_at)
    SELECT chat_jid, last_rowid, anchor, updated_at
    FROM json_to_recordset(CAST(:cursors AS json)) AS c(
        chat_jid text, last_rowid bigint, anchor text, updated_at timestamptz
    )
    ON CONFLICT (chat_jid) DO UPDATE SET last_rowid = excluded.last_rowid,
        anchor = excluded.anchor, updated_at = excluded.updated_at
),
logged AS (
    INSERT INTO drop_submissions
        (chat_jid, message_id, drop_number, project, sender, sender_name, message_time, kind)
    SELECT chat_jid, message_id, drop_number, project, sender, sender_name, message_time, kind
    FROM json_to_recordset(CAST(:submissions AS json)) AS v(
        chat_jid text, message_id text, drop_number text, project text, sender text,
        sender_name text, message_time timestamptz, kind text
    )
    ON CONFLICT (chat_jid, message_id, drop_number) DO NOTHING
    RETURNING chat_jid, message_id, drop_number
),
complete AS (SELECT count(*) = CAST(:expected AS integer) AS ok FROM logged),
updated AS (
    UPDATE qa_photo_reviews AS t SET whatsapp_message_date = v.whatsapp_message_date,
        review_date = v.review_date, last_message_date = v.last_message_date,
        user_name = v.user_name, submitted_by = v.submitted_by, incomplete = v.incomplete,
        feedback_sent = v.feedback_sent, resubmitted = v.resubmitted, comment = v.comment,
        updated_at = v.updated_at, post_deleted_at = NULL
    FROM json_to_recordset(CAST(:updates AS json)) AS v(
        _id uuid, whatsapp_message_date timestamptz, review_date date,
        last_message_date timestamptz, user_name text, submitted_by text,
        incomplete boolean, feedback_sent timestamptz, resubmitted boolean, comment text,
        updated_at timestamptz
    )
    WHERE t.id = v._id
      AND t.id = ANY(ARRAY(SELECT CAST(e ->> '_id' AS uuid)
                           FROM json_array_elements(CAST(:updates AS json)) AS e))
      AND (SELECT ok FROM complete)
),
inserted AS (
    INSERT INTO qa_photo_reviews (id, drop_number, project, user_name, submitted_by,
        whatsapp_message_date, last_message_date, review_date, resubmitted, incomplete,
        completed, comment, created_at, updated_at)
    SELECT id, drop_number, project, user_name, submitted_by, whatsapp_message_date,
        last_message_date, review_date, resubmitted, incomplete, completed, comment,
        created_at, updated_at
    FROM json_to_recordset(CAST(:inserts AS json)) AS v(
        id uuid, drop_number text, project text, user_name text, submitted_by text,
        whatsapp_message_date timestamptz, last_message_date timestamptz, review_date date,
        resubmitted boolean, incomplete boolean, completed boolean, comment text,
        created_at timestamptz, updated_at timestamptz
    )
    WHERE (SELECT ok FROM complete)
)
SELECT chat_jid, message_id, drop_number FROM logged

-- write_reviews --
-- Update the resubmitted reviews (:updates, each with its `_id`) and insert the new ones
-- (:inserts) in one statement.
-- The ids again as an array: a primary-key probe per row, not a scan of the table.
WITH updated AS (
    UPDATE qa_photo_reviews AS t SET whatsapp_message_date = v.whatsapp_message_date,
        review_date = v.review_date, last_message_date = v.last_message_date,
        user_name = v.user_name, submitted_by = v.submitted_by, incomplete = v.incomplete,
        feedback_sent = v.feedback_sent, resubmitted = v.resubmitted, comment = v.comment,
        updated_at = v.updated_at, post_deleted_at = NULL
    FROM json_to_recordset(CAST(:updates AS json)) AS v(
        _id uuid, whatsapp_message_date timestamptz, review_date date,
        last_message_date timestamptz, user_name text, submitted_by text,
        incomplete boolean, feedback_sent timestamptz, resubmitted boolean, comment text,
        updated_at timestamptz
    )
    WHERE t.id = v._id
      AND t.id = ANY(ARRAY(SELECT CAST(e ->> '_id' AS uuid)
                           FROM json_array_elements(CAST(:updates AS json)) AS e))
)
INSERT INTO qa_photo_reviews (id, drop_number, project, user_name, submitted_by,
    whatsapp_message_date, last_message_date, review_date, resubmitted, incomplete,
    completed, comment, created_at, updated_at)
SELECT id, drop_number, project, user_name, submitted_by, whatsapp_message_date,
    last_message_date, review_date, resubmitted, incomplete, completed, comment,
    created_at, updated_at
FROM json_to_recordset(CAST(:inserts AS json)) AS v(
    id uuid, drop_number text, project text, user_name text, submitted_by text,
    whatsapp_message_date timestamptz, last_message_date timestamptz, review_date date,
    resubmitted boolean, incomplete boolean, completed boolean, comment text,
    created_at timestamptz, updated_at timestamptz
)
