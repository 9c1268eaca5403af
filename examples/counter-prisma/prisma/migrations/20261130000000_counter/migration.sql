-- CreateTable
CREATE TABLE "Counter" (
    "id" INTEGER NOT NULL PRIMARY KEY,
    "value" INTEGER NOT NULL
);

-- The one row, at zero.
INSERT INTO "Counter" ("id", "value") VALUES (1, 0);
