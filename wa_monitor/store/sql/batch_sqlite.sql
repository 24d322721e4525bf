-- The monitor's batch on SQLite. Each statement takes all its rows as one JSON
-- parameter (read with json_each), so its text is the same for 1 drop or 5,000.

-- existing_reviews --
-- The reviews of a batch's keys. :rows = [{project, drop_number}].
SELECT project, drop_number, id, whatsapp_message_date, last_message_date, user_name,
       submitted_by, incomplete, feedback_sent, comment
FROM qa_photo_reviews
WHERE (project, drop_number) IN (
    SELECT json_extract(value, '$.project'), json_extract(value, '$.drop_number')
    FROM json_each(:rows)
)

-- log_submissions --
-- Log a batch's submissions, once each; returns those that were new to the log.
-- "WHERE true": SQLite's grammar needs it before ON CONFLICT in INSERT … SELECT.
INSERT INTO drop_submissions
    (chat_jid, message_id, drop_number, project, sender, sender_name, message_time, kind)
SELECT json_extract(value, '$.chat_jid'), json_extract(value, '$.message_id'),
       json_extract(value, '$.drop_number'), json_extract(value, '$.project'),
       json_extract(value, '$.sender'), json_extract(value, '$.sender_name'),
       json_extract(value, '$.message_time'), json_extract(value, '$.kind')
FROM json_each(:rows) WHERE true
ON CONFLICT (chat_jid, message_id, drop_number) DO NOTHING
RETURNING chat_jid, message_id, drop_number

-- insert_reviews --
-- The new reviews of a batch.
INSERT INTO qa_photo_reviews (id, drop_number, project, user_name, submitted_by,
    whatsapp_message_date, last_message_date, review_date, resubmitted, incomplete,
    completed, comment, created_at, updated_at)
SELECT json_extract(value, '$.id'), json_extract(value, '$.drop_number'),
       json_extract(value, '$.project'), json_extract(value, '$.user_name'),
       json_extract(value, '$.submitted_by'), json_extract(value, '$.whatsapp_message_date'),
       json_extract(value, '$.last_message_date'), json_extract(value, '$.review_date'),
       json_extract(value, '$.resubmitted'), json_extract(value, '$.incomplete'),
       json_extract(value, '$.completed'), json_extract(value, '$.comment'),
       json_extract(value, '$.created_at'), json_extract(value, '$.updated_at')
FROM json_each(:rows)

-- update_reviews --
-- The resubmitted reviews of a batch, each row naming its review by `_id`.
UPDATE qa_photo_reviews SET
    whatsapp_message_date = json_extract(v.value, '$.whatsapp_message_date'),
    review_date = json_extract(v.value, '$.review_date'),
    last_message_date = json_extract(v.value, '$.last_message_date'),
    user_name = json_extract(v.value, '$.user_name'),
    submitted_by = json_extract(v.value, '$.submitted_by'),
    incomplete = json_extract(v.value, '$.incomplete'),
    feedback_sent = json_extract(v.value, '$.feedback_sent'),
    resubmitted = json_extract(v.value, '$.resubmitted'),
    comment = json_extract(v.value, '$.comment'),
    updated_at = json_extract(v.value, '$.updated_at'),
    post_deleted_at = NULL
FROM json_each(:rows) AS v
WHERE qa_photo_reviews.id = json_extract(v.value, '$._id')
