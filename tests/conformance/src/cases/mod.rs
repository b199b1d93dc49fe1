//! One module per concern; `all()` lists every case by name.

mod admin;
mod bad_input;
mod basics;
mod concurrency;
mod diffs;
mod jobsets;
mod limits;
mod log;
mod me;
mod narinfo;
mod nix_client;
mod openapi;
mod pagination;
mod queries;
mod submit;
mod web;

use crate::client::Ctx;
use crate::TestResult;

pub use nix_client::available as nix_available;

pub type Case = fn(&Ctx) -> TestResult;

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$((concat!(stringify!($module), "::", stringify!($name)), $module::$name as Case)),*]
    };
}

pub fn all() -> Vec<(&'static str, Case)> {
    cases![
        basics::health_answers_ok,
        basics::unknown_routes_are_json_404,
        log::receipts_entries_tiles_and_checkpoint_agree,
        log::bad_tile_paths_are_404,
        web::pages_are_html_with_a_policy,
        web::unknown_pages_are_html_404_and_v1_stays_json,
        web::hostile_text_is_shown_as_text,
        web::evaluation_pages_filter_and_stay_bounded,
        web::output_derivation_and_builder_pages,
        basics::wrong_methods_are_json_405,
        basics::head_works_on_get_routes,
        basics::cache_info_is_served,
        openapi::the_openapi_document_is_served,
        openapi::every_documented_route_is_served,
        me::me_names_the_tokens_builder_and_keys,
        admin::admin_routes_need_the_admin_token,
        admin::created_builders_are_listed_with_their_keys,
        admin::taken_names_and_keys_conflict,
        admin::bad_builder_input_is_rejected_and_changes_nothing,
        admin::tokens_can_be_added_and_revoked,
        admin::delete_keeps_attestations_and_reserves_the_name,
        admin::purge_removes_attestations,
        admin::unknown_builders_are_404,
        submit::submitted_attestations_are_returned,
        submit::large_submissions_are_stored_whole,
        submit::duplicates_count_once,
        submit::any_registered_key_may_sign,
        submit::missing_unknown_or_revoked_tokens_are_401,
        submit::another_builders_key_is_403,
        submit::bad_signatures_are_400,
        submit::a_bad_output_rejects_the_whole_submission,
        submit::hash_forms_are_canonicalised,
        bad_input::malformed_json_is_400,
        bad_input::bad_fields_are_400_and_change_nothing,
        bad_input::oversized_bodies_are_413,
        bad_input::hostile_strings_never_come_back_as_html,
        queries::status_has_five_states,
        queries::bulk_status_answers_every_path,
        queries::bulk_status_limits,
        queries::derivation_view_groups_outputs,
        queries::fixed_output_paths_keep_every_deriver,
        queries::one_builder_cannot_point_a_derivation_at_another_path,
        queries::a_made_up_output_does_not_make_a_derivation_differ,
        queries::query_inputs_are_validated,
        pagination::attestations_page_newest_first,
        pagination::page_parameters_are_validated,
        diffs::an_uploaded_report_is_listed_and_downloaded,
        diffs::a_large_report_is_stored_in_pieces,
        diffs::bad_uploads_are_refused_and_store_nothing,
        diffs::a_ninth_report_on_a_path_is_refused,
        limits::a_fifth_distinct_hash_is_refused_whole,
        limits::output_attestations_come_in_pages,
        limits::output_page_parameters_are_validated,
        limits::bad_tokens_are_refused_before_the_body,
        concurrency::concurrent_first_submissions_of_one_derivation,
        concurrency::concurrent_identical_submissions_store_once,
        narinfo::builder_view_serves_its_own_signature,
        narinfo::everyone_view_signs_with_every_agreeing_builder,
        narinfo::a_wrong_size_attested_first_does_not_hide_the_majority,
        narinfo::everyone_view_breaks_ties_by_first_attested,
        narinfo::narinfo_lookups_of_unknown_paths_are_404,
        jobsets::jobset_admin_routes_need_the_admin_token,
        jobsets::jobsets_are_created_listed_and_deleted,
        jobsets::plain_list_statuses_are_live,
        jobsets::paths_json_and_cyclonedx_uploads,
        jobsets::reuploading_a_rev_replaces_it,
        jobsets::evaluation_pages_filter_and_page,
        jobsets::diffs_list_added_removed_and_changed,
        jobsets::history_and_badge,
        jobsets::jobset_tokens_upload_only_their_jobset,
        jobsets::bad_uploads_are_rejected_and_store_nothing,
        jobsets::uploads_over_the_limits_are_413,
        jobsets::upload_bodies_over_24_mib_are_413,
        jobsets::an_evaluation_of_250000_paths_is_stored_whole,
        jobsets::suggest_lists_what_a_builder_could_build,
        nix_client::nix_path_info_reads_a_builders_signature,
        nix_client::nix_store_verify_needs_two_trusted_builders,
    ]
}
