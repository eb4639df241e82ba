"""People's rights, in one package: the request trail, the subject resolved once per command, and one
entry per right.

    requests      the officer's door: ``rights_command`` (``datamin rights ACTION --subject KEY``) records a
                  request, publishes it, carries it out through its entry in ``RIGHTS``, records it done;
                  ``status_report`` is ``datamin rights status``
    subjects      ``Subject``: a subject key's pseudonyms in every key period and its keyed hash; the files
                  that hold its rows
    trail         the rights trail under ``<root>/_rights/requests/`` (received, done, deadlines)
    export        access and portability: everything linked to a subject, as JSON or CSV
    erasure       erasure and withdrawal of consent in the Parquet files; the erased-subjects topic; the sweep
    restriction   restriction and objection: the restricted-pseudonyms list the analysts' views filter by
    ledger        the forget ledger: what each erasure, withdrawal, restriction, objection and lift did, by
                  keyed hashes of the pseudonyms, so that a restored backup forgets it again
"""

from warehouse.rights.requests import ACTIONS, RIGHTS, rights_command, status_report, submit_request

__all__ = ["ACTIONS", "RIGHTS", "rights_command", "status_report", "submit_request"]
