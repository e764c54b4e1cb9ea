"""../shared/spec/totesys.md transcribed by hand, independently of include/registry.py.

The schema tests compare live databases built by our DDL against these tables, column by column,
through information_schema. (NN = NOT NULL.) Types are information_schema's spelling.
"""

TS = "timestamp without time zone"
INT, TEXT, NUM, BOOL = "integer", "text", "numeric", "boolean"
VARCHAR, DATE, TIME = "character varying", "date", "time without time zone"
ENUM = "USER-DEFINED"

# table -> [(column, data_type, nullable)] in the spec's column order
SOURCE = {
    "address": [("address_id", INT, False), ("address_line_1", TEXT, False), ("address_line_2", TEXT, True),
                ("district", TEXT, True), ("city", TEXT, False), ("postal_code", TEXT, False), ("country", TEXT, False),
                ("phone", TEXT, False), ("created_at", TS, False), ("last_updated", TS, False)],
    "counterparty": [("counterparty_id", INT, False), ("counterparty_legal_name", TEXT, False), ("legal_address_id", INT, False),
                     ("commercial_contact", TEXT, True), ("delivery_contact", TEXT, True), ("created_at", TS, False),
                     ("last_updated", TS, False)],
    "currency": [("currency_id", INT, False), ("currency_code", VARCHAR, False), ("created_at", TS, False), ("last_updated", TS, False)],
    "department": [("department_id", INT, False), ("department_name", TEXT, False), ("location", TEXT, True), ("manager", TEXT, True),
                   ("created_at", TS, False), ("last_updated", TS, False)],
    "design": [("design_id", INT, False), ("created_at", TS, False), ("design_name", TEXT, False), ("file_location", TEXT, False),
               ("file_name", TEXT, False), ("last_updated", TS, False)],
    "staff": [("staff_id", INT, False), ("first_name", TEXT, False), ("last_name", TEXT, False), ("department_id", INT, False),
              ("email_address", TEXT, False), ("created_at", TS, False), ("last_updated", TS, False)],
    "sales_order": [("sales_order_id", INT, False), ("created_at", TS, False), ("last_updated", TS, False), ("design_id", INT, False),
                    ("staff_id", INT, False), ("counterparty_id", INT, False), ("units_sold", INT, False), ("unit_price", NUM, False),
                    ("currency_id", INT, False), ("agreed_delivery_date", TEXT, False), ("agreed_payment_date", TEXT, False),
                    ("agreed_delivery_location_id", INT, False)],
    "purchase_order": [("purchase_order_id", INT, False), ("created_at", TS, False), ("last_updated", TS, False), ("staff_id", INT, False),
                       ("counterparty_id", INT, False), ("item_code", TEXT, False), ("item_quantity", INT, False),
                       ("item_unit_price", NUM, False), ("currency_id", INT, False), ("agreed_delivery_date", TEXT, False),
                       ("agreed_payment_date", TEXT, False), ("agreed_delivery_location_id", INT, False)],
    "payment_type": [("payment_type_id", INT, False), ("payment_type_name", ENUM, False), ("created_at", TS, False), ("last_updated", TS, False)],
    "transaction": [("transaction_id", INT, False), ("transaction_type", ENUM, False), ("sales_order_id", INT, True),
                    ("purchase_order_id", INT, True), ("created_at", TS, False), ("last_updated", TS, False)],
    "payment": [("payment_id", INT, False), ("created_at", TS, False), ("last_updated", TS, False), ("transaction_id", INT, False),
                ("counterparty_id", INT, False), ("payment_amount", NUM, False), ("currency_id", INT, False), ("payment_type_id", INT, False),
                ("paid", BOOL, False), ("payment_date", TEXT, False), ("company_ac_number", INT, False), ("counterparty_ac_number", INT, False)],
}

# (table, column) -> (referenced table, referenced column, ON DELETE, ON UPDATE)
SOURCE_FOREIGN_KEYS = {
    ("counterparty", "legal_address_id"): ("address", "address_id", "RESTRICT", "CASCADE"),
    ("staff", "department_id"): ("department", "department_id", "RESTRICT", "CASCADE"),
    ("sales_order", "design_id"): ("design", "design_id", "RESTRICT", "CASCADE"),
    ("sales_order", "staff_id"): ("staff", "staff_id", "RESTRICT", "CASCADE"),
    ("sales_order", "counterparty_id"): ("counterparty", "counterparty_id", "RESTRICT", "CASCADE"),
    ("sales_order", "currency_id"): ("currency", "currency_id", "RESTRICT", "CASCADE"),
    ("sales_order", "agreed_delivery_location_id"): ("address", "address_id", "RESTRICT", "CASCADE"),
    ("purchase_order", "staff_id"): ("staff", "staff_id", "RESTRICT", "CASCADE"),
    ("purchase_order", "counterparty_id"): ("counterparty", "counterparty_id", "RESTRICT", "CASCADE"),
    ("purchase_order", "currency_id"): ("currency", "currency_id", "RESTRICT", "CASCADE"),
    ("purchase_order", "agreed_delivery_location_id"): ("address", "address_id", "RESTRICT", "CASCADE"),
    ("transaction", "sales_order_id"): ("sales_order", "sales_order_id", "SET NULL", "CASCADE"),
    ("transaction", "purchase_order_id"): ("purchase_order", "purchase_order_id", "SET NULL", "CASCADE"),
    ("payment", "transaction_id"): ("transaction", "transaction_id", "RESTRICT", "CASCADE"),
    ("payment", "counterparty_id"): ("counterparty", "counterparty_id", "RESTRICT", "CASCADE"),
    ("payment", "currency_id"): ("currency", "currency_id", "RESTRICT", "CASCADE"),
    ("payment", "payment_type_id"): ("payment_type", "payment_type_id", "RESTRICT", "CASCADE"),
}
SOURCE_UNIQUE = {("payment", "transaction_id"), ("transaction", "sales_order_id"), ("transaction", "purchase_order_id")}
SOURCE_ENUMS = {
    "PaymentTypeName": ["SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND"],
    "TransactionType": ["SALE", "PURCHASE"],
}

WAREHOUSE = {
    "dim_date": [("date_id", DATE, False), ("year", INT, False), ("month", INT, False), ("day", INT, False), ("day_of_week", INT, False),
                 ("day_name", VARCHAR, False), ("month_name", VARCHAR, False), ("quarter", INT, False)],
    "dim_staff": [("staff_id", INT, False), ("first_name", VARCHAR, False), ("last_name", VARCHAR, False), ("department_name", VARCHAR, False),
                  ("location", VARCHAR, True), ("email_address", VARCHAR, False)],
    "dim_location": [("location_id", INT, False), ("address_line_1", VARCHAR, False), ("address_line_2", VARCHAR, True),
                     ("district", VARCHAR, True), ("city", VARCHAR, False), ("postal_code", VARCHAR, False), ("country", VARCHAR, False),
                     ("phone", VARCHAR, False)],
    "dim_currency": [("currency_id", INT, False), ("currency_code", VARCHAR, False), ("currency_name", VARCHAR, False)],
    "dim_design": [("design_id", INT, False), ("design_name", VARCHAR, False), ("file_location", VARCHAR, False), ("file_name", VARCHAR, False)],
    "dim_counterparty": [("counterparty_id", INT, False), ("counterparty_legal_name", VARCHAR, False),
                         ("counterparty_legal_address_line_1", VARCHAR, False), ("counterparty_legal_address_line_2", VARCHAR, True),
                         ("counterparty_legal_district", VARCHAR, True), ("counterparty_legal_city", VARCHAR, False),
                         ("counterparty_legal_postal_code", VARCHAR, False), ("counterparty_legal_country", VARCHAR, False),
                         ("counterparty_legal_phone_number", VARCHAR, False)],
    "dim_payment_type": [("payment_type_id", INT, False), ("payment_type_name", VARCHAR, False)],
    "dim_transaction": [("transaction_id", INT, False), ("transaction_type", VARCHAR, False), ("sales_order_id", INT, True),
                        ("purchase_order_id", INT, True)],
    "fact_sales_order": [("sales_record_id", INT, False), ("sales_order_id", INT, False), ("created_date", DATE, False),
                         ("created_time", TIME, False), ("last_updated_date", DATE, False), ("last_updated_time", TIME, False),
                         ("sales_staff_id", INT, False), ("counterparty_id", INT, False), ("units_sold", INT, False),
                         ("unit_price", NUM, False), ("currency_id", INT, False), ("design_id", INT, False),
                         ("agreed_payment_date", DATE, False), ("agreed_delivery_date", DATE, False),
                         ("agreed_delivery_location_id", INT, False)],
    "fact_purchase_orders": [("purchase_record_id", INT, False), ("purchase_order_id", INT, False), ("created_date", DATE, False),
                             ("created_time", TIME, False), ("last_updated_date", DATE, False), ("last_updated_time", TIME, False),
                             ("staff_id", INT, False), ("counterparty_id", INT, False), ("item_code", VARCHAR, False),
                             ("item_quantity", INT, False), ("item_unit_price", NUM, False), ("currency_id", INT, False),
                             ("agreed_delivery_date", DATE, False), ("agreed_payment_date", DATE, False),
                             ("agreed_delivery_location_id", INT, False)],
    "fact_payment": [("payment_record_id", INT, False), ("payment_id", INT, False), ("created_date", DATE, False),
                     ("created_time", TIME, False), ("last_updated_date", DATE, False), ("last_updated_time", TIME, False),
                     ("transaction_id", INT, False), ("counterparty_id", INT, False), ("payment_amount", NUM, False),
                     ("currency_id", INT, False), ("payment_type_id", INT, False), ("paid", BOOL, False), ("payment_date", DATE, False)],
}

WAREHOUSE_PRIMARY_KEYS = {
    "dim_date": "date_id", "dim_staff": "staff_id", "dim_location": "location_id", "dim_currency": "currency_id",
    "dim_design": "design_id", "dim_counterparty": "counterparty_id", "dim_payment_type": "payment_type_id",
    "dim_transaction": "transaction_id", "fact_sales_order": "sales_record_id", "fact_purchase_orders": "purchase_record_id",
    "fact_payment": "payment_record_id",
}

# (fact, column) -> referenced dimension (every arrow in the spec)
WAREHOUSE_FOREIGN_KEYS = {
    ("fact_sales_order", "created_date"): "dim_date", ("fact_sales_order", "last_updated_date"): "dim_date",
    ("fact_sales_order", "sales_staff_id"): "dim_staff", ("fact_sales_order", "counterparty_id"): "dim_counterparty",
    ("fact_sales_order", "currency_id"): "dim_currency", ("fact_sales_order", "design_id"): "dim_design",
    ("fact_sales_order", "agreed_payment_date"): "dim_date", ("fact_sales_order", "agreed_delivery_date"): "dim_date",
    ("fact_sales_order", "agreed_delivery_location_id"): "dim_location",
    ("fact_purchase_orders", "created_date"): "dim_date", ("fact_purchase_orders", "last_updated_date"): "dim_date",
    ("fact_purchase_orders", "staff_id"): "dim_staff", ("fact_purchase_orders", "counterparty_id"): "dim_counterparty",
    ("fact_purchase_orders", "currency_id"): "dim_currency", ("fact_purchase_orders", "agreed_delivery_date"): "dim_date",
    ("fact_purchase_orders", "agreed_payment_date"): "dim_date", ("fact_purchase_orders", "agreed_delivery_location_id"): "dim_location",
    ("fact_payment", "created_date"): "dim_date", ("fact_payment", "last_updated_date"): "dim_date",
    ("fact_payment", "transaction_id"): "dim_transaction", ("fact_payment", "counterparty_id"): "dim_counterparty",
    ("fact_payment", "currency_id"): "dim_currency", ("fact_payment", "payment_type_id"): "dim_payment_type",
    ("fact_payment", "payment_date"): "dim_date",
}

FACT_VERSION_KEYS = {
    "fact_sales_order": ["sales_order_id", "last_updated_date", "last_updated_time"],
    "fact_purchase_orders": ["purchase_order_id", "last_updated_date", "last_updated_time"],
    "fact_payment": ["payment_id", "last_updated_date", "last_updated_time"],
}
